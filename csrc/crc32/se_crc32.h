/* CRC-32 of zlib and gzip (polynomial 0xEDB88320, reflected), fast.
 *
 * se_crc32(crc, data, n) returns what zlib's crc32(crc, data, n) returns, for every input
 * and starting value: the running CRC of data after the bytes that gave crc (0 to start).
 * Three implementations compute it, picked once: carry-less multiply folding over 512-bit
 * registers (VPCLMULQDQ, AVX-512), over 128-bit registers (PCLMULQDQ), and a portable
 * slice-by-8 table. No Python here; any thread may call se_crc32 at once.
 */
#ifndef SE_CRC32_H
#define SE_CRC32_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    SE_CRC32_TABLE = 0,
    SE_CRC32_PCLMULQDQ = 1,
    SE_CRC32_VPCLMULQDQ = 2,
} se_crc32_impl;

#define SE_CRC32_IMPLS 3

uint32_t se_crc32(uint32_t crc, const void *data, size_t n);

/* The CRC-32 of A then B from crc_a = se_crc32(0, A, .), crc_b = se_crc32(0, B, .) and B's
 * length, without B's bytes: what zlib's crc32_combine gives. ~2 us. */
uint32_t se_crc32_combine(uint32_t crc_a, uint32_t crc_b, uint64_t length_b);

/* The fastest implementation this CPU runs. */
se_crc32_impl se_crc32_best(void);

/* Whether this CPU (and build) runs impl. */
int se_crc32_supported(se_crc32_impl impl);

/* The implementation se_crc32 uses (the best one until one is selected). */
se_crc32_impl se_crc32_selected(void);

/* Make se_crc32 use impl from now on; -1 (and no change) when it is not supported.
 * Meant for start-up and tests: not while other threads are computing. */
int se_crc32_select(se_crc32_impl impl);

/* "table", "pclmulqdq", "vpclmulqdq"; NULL for anything else. */
const char *se_crc32_name(se_crc32_impl impl);

#endif /* SE_CRC32_H */
