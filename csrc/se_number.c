/* Token writers: see se_number.h. The float writers are the inline ones of se_write.h. */
#include "se_number.h"

#include <string.h>

#include "se_write.h"

/* Exactly n digits of v (v < 10**n) into dst[0..n). */
static inline void write_digits(char *dst, uint64_t v, int n)
{
    char *p = dst + n;
    while (v >= 100) {
        uint64_t q = v / 100;
        unsigned r = (unsigned)(v - q * 100);
        p -= 2;
        memcpy(p, se_two_digits + 2 * r, 2);
        v = q;
    }
    if (v >= 10) {
        p -= 2;
        memcpy(p, se_two_digits + 2 * v, 2);
    } else {
        *--p = (char)('0' + v);
    }
    while (p > dst)  /* leading zeros when v has fewer than n digits */
        *--p = '0';
}

size_t se_write_decimal(char *out, int negative, uint64_t digits, int exponent)
{
    char *p = out;
    *p = '-';
    p += negative;
    return (size_t)(se_put_decimal17(p, digits, exponent) - out);
}

size_t se_write_f64(char *out, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    return (size_t)(se_put_f64_bits(out, bits) - out);
}

size_t se_write_f32_shortest(char *out, float v)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    return (size_t)(se_put_f32_shortest_bits(out, bits) - out);
}

size_t se_write_u64(char *out, uint64_t v)
{
    if (v == 0) {
        out[0] = '0';
        return 1;
    }
    int n = se_digit_count(v);
    write_digits(out, v, n);
    return (size_t)n;
}

size_t se_write_i64(char *out, int64_t v)
{
    if (v < 0) {
        out[0] = '-';
        return 1 + se_write_u64(out + 1, (uint64_t)0 - (uint64_t)v);
    }
    return se_write_u64(out, (uint64_t)v);
}
