/* Token writers: see se_number.h. */
#include "se_number.h"

#include <math.h>
#include <string.h>

#include "se_shortest.h"

static const char two_digits[200] =
    "0001020304050607080910111213141516171819"
    "2021222324252627282930313233343536373839"
    "4041424344454647484950515253545556575859"
    "6061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

static const uint64_t pow10_u64[20] = {
    1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL, 10000000ULL,
    100000000ULL, 1000000000ULL, 10000000000ULL, 100000000000ULL, 1000000000000ULL,
    10000000000000ULL, 100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL,
    100000000000000000ULL, 1000000000000000000ULL, 10000000000000000000ULL,
};

/* Number of decimal digits of v (v >= 1). */
static inline int digit_count(uint64_t v)
{
    int n = 1;
    while (n < 20 && v >= pow10_u64[n])
        n++;
    return n;
}

/* Exactly n digits of v (v < 10**n) into dst[0..n). */
static inline void write_digits(char *dst, uint64_t v, int n)
{
    char *p = dst + n;
    while (v >= 100) {
        uint64_t q = v / 100;
        unsigned r = (unsigned)(v - q * 100);
        p -= 2;
        memcpy(p, two_digits + 2 * r, 2);
        v = q;
    }
    if (v >= 10) {
        p -= 2;
        memcpy(p, two_digits + 2 * v, 2);
    } else {
        *--p = (char)('0' + v);
    }
    while (p > dst)  /* leading zeros when v has fewer than n digits */
        *--p = '0';
}

size_t se_write_decimal(char *out, int negative, uint64_t digits, int exponent)
{
    char *p = out;
    if (negative)
        *p++ = '-';
    while (digits % 10 == 0) {
        digits /= 10;
        exponent++;
    }
    int n = digit_count(digits);
    int e = exponent + n - 1;  /* d.ddd x 10**e */
    if (e < -4 || e >= 16) {
        write_digits(p + 1, digits, n);
        p[0] = p[1];
        if (n > 1) {
            p[1] = '.';
            p += n + 1;
        } else {
            p += 1;
        }
        *p++ = 'e';
        unsigned a;
        if (e < 0) {
            *p++ = '-';
            a = (unsigned)-e;
        } else {
            *p++ = '+';
            a = (unsigned)e;
        }
        if (a >= 100) {
            *p++ = (char)('0' + a / 100);
            a %= 100;
        }
        memcpy(p, two_digits + 2 * a, 2);
        p += 2;
    } else if (e < 0) {
        memcpy(p, "0.0000", 6);  /* "0." and up to three zeros */
        p += 2 + (-e - 1);
        write_digits(p, digits, n);
        p += n;
    } else if (n <= e + 1) {
        write_digits(p, digits, n);
        p += n;
        memset(p, '0', (size_t)(e + 1 - n));
        p += e + 1 - n;
        memcpy(p, ".0", 2);
        p += 2;
    } else {
        write_digits(p + 1, digits, n);
        memmove(p, p + 1, (size_t)(e + 1));
        p[e + 1] = '.';
        p += n + 1;
    }
    return (size_t)(p - out);
}

static size_t write_zero(char *out, int negative)
{
    if (negative) {
        memcpy(out, "-0.0", 4);
        return 4;
    }
    memcpy(out, "0.0", 3);
    return 3;
}

size_t se_write_f64(char *out, double v)
{
    int negative = signbit(v) != 0;
    if (v == 0)
        return write_zero(out, negative);
    se_decimal d = se_shortest_f64(v);
    return se_write_decimal(out, negative, d.digits, d.exponent);
}

size_t se_write_f32_shortest(char *out, float v)
{
    int negative = signbit(v) != 0;
    if (v == 0)
        return write_zero(out, negative);
    se_decimal d = se_shortest_f32(v);
    return se_write_decimal(out, negative, d.digits, d.exponent);
}

size_t se_write_u64(char *out, uint64_t v)
{
    if (v == 0) {
        out[0] = '0';
        return 1;
    }
    int n = digit_count(v);
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
