/* The float token writers as static inline functions (internal header).
 *
 * se_number.c wraps them as the public writers; se_runs.c includes this header so that
 * conversion and layout are inlined into the per-dtype loops. Buffer contract as in
 * se_number.h: each writer may store up to SE_TOKEN_SPACE bytes at its output.
 */
#ifndef SE_WRITE_H
#define SE_WRITE_H

#include <stdint.h>
#include <string.h>

#include "se_number.h"
#include "se_schubfach.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#if defined(__GNUC__)
#define se_likely(x) __builtin_expect(!!(x), 1)
#define se_unlikely(x) __builtin_expect(!!(x), 0)
#define se_clz64(v) __builtin_clzll(v)
#else
#define se_likely(x) (x)
#define se_unlikely(x) (x)
static inline int se_clz64(uint64_t v)  /* v != 0 */
{
    int n = 0;
    while (!(v & 0x8000000000000000ULL)) {
        v <<= 1;
        n++;
    }
    return n;
}
#endif

static const char se_two_digits[200] =
    "0001020304050607080910111213141516171819"
    "2021222324252627282930313233343536373839"
    "4041424344454647484950515253545556575859"
    "6061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

static const uint64_t se_pow10_u64[20] = {
    1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL, 10000000ULL,
    100000000ULL, 1000000000ULL, 10000000000ULL, 100000000000ULL, 1000000000000ULL,
    10000000000000ULL, 100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL,
    100000000000000000ULL, 1000000000000000000ULL, 10000000000000000000ULL,
};

/* Number of decimal digits of v (v >= 1): from the bit length, corrected by one compare. */
static inline int se_digit_count(uint64_t v)
{
    int bits = 64 - se_clz64(v);
    int n = (bits * 1233) >> 12;  /* floor(log10(2**bits)) or one less */
    return n + (v >= se_pow10_u64[n]);
}

/* The 8 decimal digits of x < 10**8 as byte values 0..9, the first digit in the lowest
 * byte (SWAR: split into 4+4, then 2+2 per half, then 1+1, all lanes at once). */
static inline uint64_t se_eight_digits(uint32_t x)
{
    uint64_t v = (uint64_t)(x / 10000) | ((uint64_t)(x % 10000) << 32);
    uint64_t q = ((v * 10486) >> 20) & 0x0000007F0000007FULL;  /* / 100 for < 10**4 */
    v = q | ((v - 100 * q) << 16);
    q = ((v * 103) >> 10) & 0x000F000F000F000FULL;             /* / 10 for < 100 */
    return q | ((v - 10 * q) << 8);
}

/* Digits before the trailing zeros of an eight_digits() word (0 when it is 0). */
static inline int se_significant_digits(uint64_t w)
{
    return w ? 8 - (se_clz64(w) >> 3) : 0;
}

#define SE_ASCII_ZEROS 0x3030303030303030ULL

/* Stores 8 bytes of a word, its lowest byte first (digits in reading order). */
static inline void se_store8(char *dst, uint64_t w)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    memcpy(dst, &w, 8);
}

/* Lays out the digit string D = first, wm, wl (ASCII, 17 digits, `more` significant
 * digits after the first) with decimal exponent e (value d.ddd x 10**e) at p, like repr:
 * fixed notation for -4 <= e < 16, else d.ddde+XX. Returns the end of the token. */
static inline char *se_put_layout(char *p, uint32_t first, uint64_t wm, uint64_t wl, int more,
                                  int e)
{
    if (se_likely((unsigned)(e + 4) < 4)) {
        /* 0.000ddd: "0." and up to six zeros in one store, then the digits over them */
        se_store8(p, 0x303030303030 * 0x10000ULL + 0x2e30);  /* "0.000000" */
        char *d = p + 1 - e;
        d[0] = (char)('0' + first);
        se_store8(d + 1, wm);
        se_store8(d + 9, wl);
        return d + 1 + more;
    }
    if ((unsigned)e < 16) {
        /* the first e + 1 digits (zeros past the last), ".", the rest or "0" */
        char buf[64];
        buf[0] = (char)('0' + first);
        se_store8(buf + 1, wm);
        se_store8(buf + 9, wl);
        memset(buf + 17, '0', 40);
        memcpy(p, buf, 16);
        p[e + 1] = '.';
        memcpy(p + e + 2, buf + e + 1, 16);
        int fraction = more - e;
        return p + e + 2 + (fraction > 0 ? fraction : 1);
    }
    /* d.ddde+XX, or de+XX for one digit */
    p[0] = (char)('0' + first);
    p[1] = '.';
    se_store8(p + 2, wm);
    se_store8(p + 10, wl);
    p += more ? 2 + more : 1;
    unsigned a = (unsigned)(e < 0 ? -e : e);
    p[0] = 'e';
    p[1] = e < 0 ? '-' : '+';
    p += 2;
    if (a >= 100) {
        *p++ = (char)('0' + a / 100);
        a %= 100;
    }
    memcpy(p, se_two_digits + 2 * a, 2);
    return p + 2;
}

#if defined(__SSE2__)
/* The 16 decimal digits of hi8 * 10**8 + lo8 (hi8, lo8 < 10**8) as ASCII in reading order
 * in *digits; returns how many of them are significant (16 minus the trailing zeros). The
 * same splits as se_eight_digits, both words at once: 10**8 -> 10**4 in 64-bit lanes,
 * -> 100 in 32-bit lanes, -> 10 in 16-bit lanes; each quotient goes to the lower half of
 * its lane, the remainder to the upper half. */
static inline int se_sixteen_digits(uint32_t hi8, uint32_t lo8, __m128i *digits)
{
    __m128i v = _mm_set_epi64x((long long)lo8, (long long)hi8);
    __m128i q = _mm_srli_epi64(_mm_mul_epu32(v, _mm_set1_epi32(109951163)), 40);
    __m128i r = _mm_sub_epi32(v, _mm_mul_epu32(q, _mm_set1_epi32(10000)));
    v = _mm_or_si128(q, _mm_slli_epi64(r, 32));
    q = _mm_srli_epi16(_mm_mulhi_epu16(v, _mm_set1_epi32(5243)), 3);
    r = _mm_sub_epi16(v, _mm_mullo_epi16(q, _mm_set1_epi32(100)));
    v = _mm_or_si128(q, _mm_slli_epi32(r, 16));
    q = _mm_mulhi_epu16(v, _mm_set1_epi16(6554));
    r = _mm_sub_epi16(v, _mm_mullo_epi16(q, _mm_set1_epi16(10)));
    v = _mm_or_si128(q, _mm_slli_epi16(r, 8));
    unsigned zeros = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_setzero_si128()));
    *digits = _mm_add_epi8(v, _mm_set1_epi8('0'));
    unsigned nonzero = ~zeros & 0xffffu;
    return 31 - __builtin_clz((nonzero << 1) | 1);
}
#endif

/* s17 (10**16 <= s17 < 10**17) read as d.dddddddddddddddd x 10**e, laid out at p. */
static inline char *se_put_digits17(char *p, uint64_t s17, int e)
{
    /* a first digit and two groups of eight */
    uint64_t hi9 = s17 / 100000000;
    uint32_t lo8 = (uint32_t)(s17 - hi9 * 100000000);
    uint32_t first = (uint32_t)hi9 / 100000000;
    uint32_t mid8 = (uint32_t)hi9 - first * 100000000;
    uint64_t wm, wl;
    int more;
#if defined(__SSE2__)
    __m128i digits;
    more = se_sixteen_digits(mid8, lo8, &digits);
    if (se_likely((unsigned)(e + 4) < 4)) {
        /* 0.000ddd (as in se_put_layout, with the 16 digits in one store) */
        se_store8(p, 0x303030303030 * 0x10000ULL + 0x2e30);  /* "0.000000" */
        char *d = p + 1 - e;
        d[0] = (char)('0' + first);
        _mm_storeu_si128((__m128i *)(void *)(d + 1), digits);
        return d + 1 + more;
    }
    wm = (uint64_t)_mm_cvtsi128_si64(digits);
    wl = (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(digits, digits));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#error "SSE2 on a big-endian target"
#endif
#else
    uint64_t m = se_eight_digits(mid8), l = se_eight_digits(lo8);
    wm = m + SE_ASCII_ZEROS;
    wl = l + SE_ASCII_ZEROS;
    more = l ? 16 - (se_clz64(l) >> 3) : se_significant_digits(m);
#endif
    return se_put_layout(p, first, wm, wl, more, e);
}

/* digits * 10**exponent (1 <= digits < 10**17) laid out at p; returns the token's end. */
static inline char *se_put_decimal17(char *p, uint64_t digits, int exponent)
{
    int n = se_digit_count(digits);
    return se_put_digits17(p, digits * se_pow10_u64[17 - n], exponent + n - 1);
}

/* digits * 10**exponent (1 <= digits < 10**9: float32 shortest, small dtypes) at p. */
static inline char *se_put_decimal9(char *p, uint64_t digits, int exponent)
{
    int n = se_digit_count(digits);
    uint32_t s9 = (uint32_t)(digits * se_pow10_u64[9 - n]);
    uint32_t first = s9 / 100000000;
    uint64_t wm = se_eight_digits(s9 - first * 100000000);
    return se_put_layout(p, first, wm + SE_ASCII_ZEROS, SE_ASCII_ZEROS,
                         se_significant_digits(wm), exponent + n - 1);
}

static inline char *se_put_zero(char *p)  /* after the sign */
{
    memcpy(p, "0.0", 4);
    return p + 3;
}

/* repr of the finite float64 with these bits. Integer-valued floats need no fast path:
 * below 2**53 their neighbours are at most 1 away, so their shortest digits are their own. */
static inline char *se_put_f64_bits(char *p, uint64_t bits)
{
    *p = '-';
    p += bits >> 63;
    uint64_t t = bits & ((1ULL << 52) - 1);
    int e = (int)((bits >> 52) & 0x7ff);
    se_decimal d;
    if (se_likely(e != 0 && t != 0)) {
        d = convert64_at(t | (1ULL << 52), se_f64_kh[e][0], se_f64_kh[e][1], 0);
    } else if (e != 0) {
        d = convert64(1ULL << 52, e - 1075, e > 1);
    } else {
        if (t == 0)
            return se_put_zero(p);
        d = convert64(t, -1074, 0);  /* subnormal: any number of digits */
        return se_put_decimal17(p, d.digits, d.exponent);
    }
    /* a normal float64 gives 16 or 17 digits: c * 2**q / 10**k lies in [c, 13.4 c) for
     * 2**52 <= c < 2**53 (see floor_log10_pow2 and its three-quarters form) */
    int big = d.digits >= 10000000000000000ULL;
    return se_put_digits17(p, big ? d.digits : d.digits * 10, d.exponent + 15 + big);
}

/* repr of the finite float32 with these bits, widened to float64 (exact). A normal float32
 * is c * 2**q with c < 2**24, as a float64 the significand c << 29 (even: the interval's ends
 * are included, out = 0 folds away) and the same spacing rule: its lower neighbour is closer
 * exactly when the fraction is 0. */
static inline char *se_put_f32_exact_bits(char *p, uint32_t bits)
{
    *p = '-';
    p += bits >> 31;
    uint64_t t = bits & ((1u << 23) - 1);
    int e = (int)((bits >> 23) & 0xff);
    se_decimal d;
    if (se_likely(e != 0 && t != 0)) {
        d = convert64_at((t | (1u << 23)) << 29, se_f32_exact_kh[e][0], se_f32_exact_kh[e][1], 0);
    } else if (e != 0) {
        d = convert64(1ULL << 52, e - 179, 1);
    } else {
        if (t == 0)
            return se_put_zero(p);
        float f;
        uint32_t magnitude = bits & 0x7fffffffu;
        memcpy(&f, &magnitude, 4);
        double v = (double)f;  /* a subnormal float32 is a normal float64 */
        uint64_t vbits;
        memcpy(&vbits, &v, 8);
        return se_put_f64_bits(p, vbits);
    }
    int big = d.digits >= 10000000000000000ULL;  /* as in se_put_f64_bits */
    return se_put_digits17(p, big ? d.digits : d.digits * 10, d.exponent + 15 + big);
}

/* The token at [p, end) or the exact token of the float32 magnitude_bits, whichever is
 * shorter text. Fixed notation pads a power of ten with zeros: the float32 99999997952 has
 * the fewest digits "1e11" but prints "100000000000.0", one character more than its exact
 * "99999997952.0". Only values in [1e10, 1e16) can meet this, so only they come here. */
static inline char *se_shorter_of_exact_f32(char *p, char *end, uint32_t magnitude_bits)
{
    char exact[SE_TOKEN_SPACE];
    char *exact_end = se_put_f32_exact_bits(exact, magnitude_bits);
    if (exact_end - exact >= end - p)
        return end;
    memcpy(p, exact, (size_t)(exact_end - exact));
    return p + (exact_end - exact);
}

/* The shortest float32 text of the finite float32 with these bits: the fewest significant
 * digits that read back, or the exact token where that is shorter (see above). */
static inline char *se_put_f32_shortest_bits(char *p, uint32_t bits)
{
    *p = '-';
    p += bits >> 31;
    uint64_t t = bits & ((1u << 23) - 1);
    int e = (int)((bits >> 23) & 0xff);
    se_decimal d;
    if (se_likely(e != 0 && t != 0)) {
        d = convert32_at(t | (1u << 23), se_f32_shortest_kh[e][0], se_f32_shortest_kh[e][1], 0);
    } else if (e != 0) {
        d = convert32(1u << 23, e - 150, e > 1);
    } else {
        if (t == 0)
            return se_put_zero(p);
        d = convert32(t, -149, 0);
    }
    char *end = se_put_decimal9(p, d.digits, d.exponent);
    float magnitude;
    uint32_t magnitude_bits = bits & 0x7fffffffu;
    memcpy(&magnitude, &magnitude_bits, 4);
    if (se_unlikely(magnitude >= 1e10f && magnitude < 1e16f))
        return se_shorter_of_exact_f32(p, end, magnitude_bits);
    return end;
}

#endif /* SE_WRITE_H */
