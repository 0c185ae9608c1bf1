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

#if defined(__GNUC__)
#define leading_zero_bits(v) __builtin_clzll(v)
#else
static inline int leading_zero_bits(uint64_t v)  /* v != 0 */
{
    int n = 0;
    while (!(v & 0x8000000000000000ULL)) {
        v <<= 1;
        n++;
    }
    return n;
}
#endif

/* Number of decimal digits of v (v >= 1): from the bit length, corrected by one compare. */
static inline int digit_count(uint64_t v)
{
    int bits = 64 - leading_zero_bits(v);
    int n = (bits * 1233) >> 12;  /* floor(log10(2**bits)) or one less */
    return n + (v >= pow10_u64[n]);
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

/* The 8 decimal digits of x < 10**8 as byte values 0..9, the first digit in the lowest
 * byte (SWAR: split into 4+4, then 2+2 per half, then 1+1, all lanes at once). */
static inline uint64_t eight_digits(uint32_t x)
{
    uint64_t v = (uint64_t)(x / 10000) | ((uint64_t)(x % 10000) << 32);
    uint64_t q = ((v * 10486) >> 20) & 0x0000007F0000007FULL;  /* / 100 for < 10**4 */
    v = q | ((v - 100 * q) << 16);
    q = ((v * 103) >> 10) & 0x000F000F000F000FULL;             /* / 10 for < 100 */
    return q | ((v - 10 * q) << 8);
}

/* Trailing zero digits of an eight_digits() word (8 when it is 0). */
static inline int trailing_zero_digits(uint64_t w)
{
    return w ? leading_zero_bits(w) >> 3 : 8;
}

#define ASCII_ZEROS 0x3030303030303030ULL

/* Stores the 8 ASCII digits of a word (first digit in the lowest byte) in reading order. */
static inline void store_digits8(char *dst, uint64_t w)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    memcpy(dst, &w, 8);
}

size_t se_write_decimal(char *out, int negative, uint64_t digits, int exponent)
{
    char *p = out;
    *p = '-';
    p += negative;
    /* As 17 digits d.dddddddddddddddd, without leading zeros, so the three parts can be
     * stored straight into place: a first digit and two SWAR words of eight. A float64's
     * digits have 16 or 17 digits (a select, no branch); a float32's at most 9 (one word). */
    int n;
    uint32_t first, mid8, lo8;
    if (digits >= 1000000000ULL) {
        uint64_t s17;
        if (digits >= 1000000000000000ULL) {
            int big = digits >= 10000000000000000ULL;
            n = 16 + big;
            s17 = big ? digits : digits * 10;
        } else {
            n = digit_count(digits);
            s17 = digits * pow10_u64[17 - n];
        }
        uint64_t hi9 = s17 / 100000000;
        lo8 = (uint32_t)(s17 - hi9 * 100000000);
        first = (uint32_t)hi9 / 100000000;
        mid8 = (uint32_t)hi9 - first * 100000000;
    } else {
        /* at most 9 digits (float32 shortest, the small dtypes): one word is enough */
        n = digit_count(digits);
        uint32_t s9 = (uint32_t)(digits * pow10_u64[9 - n]);
        first = s9 / 100000000;
        mid8 = s9 - first * 100000000;
        lo8 = 0;
    }
    int e = exponent + n - 1;  /* d.ddd x 10**e */
    uint64_t wm = eight_digits(mid8), wl = eight_digits(lo8);
    /* significant digits after the first */
    int more = 16 - (lo8 ? trailing_zero_digits(wl) : 8 + (mid8 ? trailing_zero_digits(wm) : 8));
    wm += ASCII_ZEROS;
    wl += ASCII_ZEROS;
    if (e >= -4 && e < 0) {
        /* 0.000ddd */
        memcpy(p, "0.000", 5);
        char *d = p + 1 - e;
        d[0] = (char)('0' + first);
        store_digits8(d + 1, wm);
        store_digits8(d + 9, wl);
        p = d + 1 + more;
    } else if (e >= 0 && e < 16) {
        /* the first e + 1 digits (zeros past the last), ".", the rest or "0" */
        char buf[64];
        buf[0] = (char)('0' + first);
        store_digits8(buf + 1, wm);
        store_digits8(buf + 9, wl);
        memset(buf + 17, '0', 40);
        memcpy(p, buf, 16);
        p[e + 1] = '.';
        memcpy(p + e + 2, buf + e + 1, 16);
        int fraction = more - e;
        p += e + 2 + (fraction > 0 ? fraction : 1);
    } else {
        /* d.ddde+XX, or de+XX for one digit */
        p[0] = (char)('0' + first);
        p[1] = '.';
        store_digits8(p + 2, wm);
        store_digits8(p + 10, wl);
        p += more ? 2 + more : 1;
        unsigned a = (unsigned)(e < 0 ? -e : e);
        p[0] = 'e';
        p[1] = e < 0 ? '-' : '+';
        p += 2;
        if (a >= 100) {
            *p++ = (char)('0' + a / 100);
            a %= 100;
        }
        memcpy(p, two_digits + 2 * a, 2);
        p += 2;
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

/* An integer-valued float below `limit` (2**53 for float64, 2**24 for float32, where every
 * neighbour is at most 1 away) is its own shortest decimal: its digits and ".0". */
static inline int write_integer(char *out, double v, double limit, size_t *length)
{
    double a = fabs(v);
    if (!(a < limit) || a != (double)(int64_t)a)
        return 0;
    char *p = out;
    *p = '-';
    p += v < 0;
    p += se_write_u64(p, (uint64_t)a);
    memcpy(p, ".0", 2);
    *length = (size_t)(p + 2 - out);
    return 1;
}

size_t se_write_f64(char *out, double v)
{
    int negative = signbit(v) != 0;
    size_t length;
    if (v == 0)
        return write_zero(out, negative);
    if (write_integer(out, v, 9007199254740992.0, &length))
        return length;
    se_decimal d = se_shortest_f64(v);
    return se_write_decimal(out, negative, d.digits, d.exponent);
}

size_t se_write_f32_shortest(char *out, float v)
{
    int negative = signbit(v) != 0;
    size_t length;
    if (v == 0)
        return write_zero(out, negative);
    if (write_integer(out, v, 16777216.0, &length))
        return length;
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
