/* CRC-32: the portable table path and the choice among the paths (see se_crc32.h). */
#include "se_crc32.h"

#include "se_crc32_paths.h"
#include "se_crc32_tables.h"

uint32_t se_crc32_by_table(uint32_t crc, const unsigned char *p, size_t n)
{
    uint32_t r = ~crc;
    /* eight bytes at a time: four through the register, four on their own; the bytes are
     * read one by one so that the byte order of the machine does not matter */
    for (; n >= 8; p += 8, n -= 8) {
        r ^= (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        r = se_crc32_table[7][r & 0xff] ^ se_crc32_table[6][(r >> 8) & 0xff] ^
            se_crc32_table[5][(r >> 16) & 0xff] ^ se_crc32_table[4][r >> 24] ^
            se_crc32_table[3][p[4]] ^ se_crc32_table[2][p[5]] ^
            se_crc32_table[1][p[6]] ^ se_crc32_table[0][p[7]];
    }
    for (; n > 0; p++, n--)
        r = (r >> 8) ^ se_crc32_table[0][(r ^ *p) & 0xff];
    return ~r;
}

int se_crc32_supported(se_crc32_impl impl)
{
    switch (impl) {
    case SE_CRC32_TABLE:
        return 1;
#if SE_CRC32_HAVE_X86
    case SE_CRC32_PCLMULQDQ:
        return se_crc32_pclmulqdq_supported();
    case SE_CRC32_VPCLMULQDQ:
        return se_crc32_vpclmulqdq_supported();
#endif
    default:
        return 0;
    }
}

se_crc32_impl se_crc32_best(void)
{
    if (se_crc32_supported(SE_CRC32_VPCLMULQDQ))
        return SE_CRC32_VPCLMULQDQ;
    if (se_crc32_supported(SE_CRC32_PCLMULQDQ))
        return SE_CRC32_PCLMULQDQ;
    return SE_CRC32_TABLE;
}

/* -1: not chosen yet. A racy first use only ever stores the same value. */
static int selected = -1;

se_crc32_impl se_crc32_selected(void)
{
    if (selected < 0)
        selected = (int)se_crc32_best();
    return (se_crc32_impl)selected;
}

int se_crc32_select(se_crc32_impl impl)
{
    if (!se_crc32_supported(impl))
        return -1;
    selected = (int)impl;
    return 0;
}

const char *se_crc32_name(se_crc32_impl impl)
{
    static const char *const names[SE_CRC32_IMPLS] = {"table", "pclmulqdq", "vpclmulqdq"};
    return (unsigned)impl < SE_CRC32_IMPLS ? names[impl] : NULL;
}

uint32_t se_crc32(uint32_t crc, const void *data, size_t n)
{
    const unsigned char *p = data;
    switch (se_crc32_selected()) {
#if SE_CRC32_HAVE_X86
    case SE_CRC32_VPCLMULQDQ:
        return se_crc32_vpclmulqdq(crc, p, n);
    case SE_CRC32_PCLMULQDQ:
        return se_crc32_pclmulqdq(crc, p, n);
#endif
    default:
        return se_crc32_by_table(crc, p, n);
    }
}

/* Combining. A CRC is the remainder mod P of the message's polynomial (with the pre- and
 * post-conditioning, which cancel out here): crc(A B) = crc(A) x^(8 |B|) + crc(B) mod P over
 * GF(2). Polynomials are held as the CRC holds them, reflected: bit 31 is x^0, bit 0 x^31. */
#define SE_CRC32_POLY 0xedb88320u  /* P without its x^32 term, reflected */

/* a * b mod P: b x^i for each power x^i present in a, from x^0 up, b stepping by x. */
static uint32_t multiply_mod_p(uint32_t a, uint32_t b)
{
    uint32_t product = 0;
    for (int i = 0; i < 32; i++) {
        if (a & (0x80000000u >> i))
            product ^= b;
        b = (b >> 1) ^ ((b & 1) ? SE_CRC32_POLY : 0);  /* times x: x^31's term wraps to P */
    }
    return product;
}

/* x^(8 n) mod P, by squaring x^8 along the bits of n. */
static uint32_t x_to_8n_mod_p(uint64_t n)
{
    uint32_t result = 0x80000000u;  /* 1 */
    uint32_t power = 0x00800000u;   /* x^8 */
    for (; n != 0; n >>= 1) {
        if (n & 1)
            result = multiply_mod_p(result, power);
        power = multiply_mod_p(power, power);
    }
    return result;
}

uint32_t se_crc32_combine(uint32_t crc_a, uint32_t crc_b, uint64_t length_b)
{
    return multiply_mod_p(x_to_8n_mod_p(length_b), crc_a) ^ crc_b;
}
