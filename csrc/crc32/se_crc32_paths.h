/* The implementations behind se_crc32 (se_crc32.h), for se_crc32.c's dispatch only.
 * Each takes and returns a CRC in zlib's convention (inverted register). */
#ifndef SE_CRC32_PATHS_H
#define SE_CRC32_PATHS_H

#include <stddef.h>
#include <stdint.h>

/* Slice-by-8 over a lookup table: any byte order, any CPU. */
uint32_t se_crc32_by_table(uint32_t crc, const unsigned char *p, size_t n);

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SE_CRC32_HAVE_X86 1
/* CPU support of each folding path (including the OS saving AVX-512 state). */
int se_crc32_pclmulqdq_supported(void);
int se_crc32_vpclmulqdq_supported(void);
uint32_t se_crc32_pclmulqdq(uint32_t crc, const unsigned char *p, size_t n);
uint32_t se_crc32_vpclmulqdq(uint32_t crc, const unsigned char *p, size_t n);
#endif

#endif /* SE_CRC32_PATHS_H */
