/* The Schubfach conversion itself, as static inline functions (internal header).
 *
 * se_shortest.c wraps them as the public entry points; the float run writers include this
 * header too, so that the conversion is inlined into their loops (no call per element).
 * See se_shortest.c for the notation and se_shortest.h for the results' meaning.
 */
#ifndef SE_SCHUBFACH_H
#define SE_SCHUBFACH_H

#include <stdint.h>

#include "se_shortest.h"
#include "se_tables.h"

#if defined(__SIZEOF_INT128__) && !defined(SE_NO_INT128)
__extension__ typedef unsigned __int128 se_u128;

/* (a * b) >> 64 and the low word. */
static inline uint64_t mul_hi64(uint64_t a, uint64_t b, uint64_t *lo)
{
    se_u128 p = (se_u128)a * b;
    *lo = (uint64_t)p;
    return (uint64_t)(p >> 64);
}
#else
static inline uint64_t mul_hi64(uint64_t a, uint64_t b, uint64_t *lo)
{
    uint64_t a0 = (uint32_t)a, a1 = a >> 32, b0 = (uint32_t)b, b1 = b >> 32;
    uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    uint64_t mid = (p00 >> 32) + (uint32_t)p01 + (uint32_t)p10;
    *lo = (mid << 32) | (uint32_t)p00;
    return p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
}
#endif

/* Integer forms of the logarithms; scripts/gen_tables.py proves them over every q used. */
static inline int floor_log10_pow2(int q) { return (int)(((int64_t)q * 661971961083LL) >> 41); }
static inline int floor_log10_three_quarters_pow2(int q)
{
    return (int)(((int64_t)q * 661971961083LL - 274743187321LL) >> 41);
}
static inline int floor_log2_pow10(int e) { return (int)(((int64_t)e * 913124641741LL) >> 38); }

/* A 192-bit unsigned integer, hi * 2**64 + lo: products cp * g of the float64 path. */
typedef struct {
    uint64_t lo, mid, hi;
} u192;

/* cp * g for g = g[0] * 2**64 + g[1]: the one 64x128-bit multiply of a conversion. */
static inline u192 mul_64x128(uint64_t cp, const uint64_t g[2])
{
    u192 r;
    uint64_t lo_hi = mul_hi64(cp, g[1], &r.lo);
    uint64_t hi_lo;
    r.hi = mul_hi64(cp, g[0], &hi_lo);
    r.mid = hi_lo + lo_hi;
    r.hi += r.mid < hi_lo;
    return r;
}

/* g << s (s in 1..8) as 192 bits: the distance from the value to an end of its interval,
 * cb - cbl (or cbr - cb) shifted by h, times g: so the ends need no multiply of their own. */
static inline u192 shift_g(const uint64_t g[2], int s)
{
    u192 r;
    r.lo = g[1] << s;
    r.mid = (g[0] << s) | (g[1] >> (64 - s));
    r.hi = g[0] >> (64 - s);
    return r;
}

static inline u192 add192(u192 a, u192 b)
{
    u192 r;
    r.lo = a.lo + b.lo;
    uint64_t c = r.lo < a.lo;
    r.mid = a.mid + b.mid;
    uint64_t c2 = r.mid < a.mid;
    r.mid += c;
    c2 |= r.mid < c;
    r.hi = a.hi + b.hi + c2;
    return r;
}

static inline u192 sub192(u192 a, u192 b)
{
    u192 r;
    r.lo = a.lo - b.lo;
    uint64_t borrow = a.lo < b.lo;
    r.mid = a.mid - b.mid;
    uint64_t borrow2 = a.mid < b.mid;
    borrow2 |= r.mid < borrow;
    r.mid -= borrow;
    r.hi = a.hi - b.hi - borrow2;
    return r;
}

/* p / 2**127 rounded to odd, the fraction kept to 63 bits and truncated: with
 * m = floor(p / 2**64), the value is m >> 63, made odd when m's low 63 bits are not 0. */
static inline uint64_t round_to_odd_64(u192 p)
{
    uint64_t value = (p.hi << 1) | (p.mid >> 63);
    return value | ((p.mid & 0x7fffffffffffffffULL) != 0);
}

/* p / 2**95 rounded to odd for the float32 path (p = cp * g, g of 63 bits): the fraction
 * kept to 31 bits (of the high word) and truncated. */
static inline uint64_t round_to_odd_32(uint64_t p_hi)
{
    return (p_hi >> 31) | ((p_hi & 0x7fffffffULL) != 0);
}

/* The choice among the candidates, shared by both widths. vb, vbl, vbr: 4 * 10**-k times
 * the value and the interval's ends, rounded to odd; out: 1 when the ends are excluded. */
static inline se_decimal choose(uint64_t vb, uint64_t vbl, uint64_t vbr, uint64_t out, int k)
{
    /* Written as selects, not branches: for real data each test is a coin flip. */
    uint64_t s = vb >> 2;
    uint64_t t = s + 1;
    /* one digit fewer: at most one multiple of ten fits, the interval being < 10 wide
     * (only asked when s has two digits or more, so that it is really shorter) */
    uint64_t sp10 = 10 * (s / 10);
    uint64_t tp10 = sp10 + 10;
    int upin = vbl + out <= sp10 << 2;
    int wpin = (tp10 << 2) + out <= vbr;
    int shorter = (upin != wpin) & (s >= 10);
    uint64_t r_short = tp10 - 10 * (uint64_t)upin;
    /* s or t: the one inside, or the closer when both are (s on a tie when even) */
    int uin = vbl + out <= s << 2;
    int win = (t << 2) + out <= vbr;
    /* vb - 4s = vb & 3: below 2 s is closer, 2 a tie (exact: vb is rounded to odd) */
    int closer_s = (vb & 3) + (s & 1) <= 2;
    int one_in = uin ^ win;
    int take_s = (one_in & uin) | ((one_in ^ 1) & closer_s);
    uint64_t r_same = t - (uint64_t)take_s;
    uint64_t pick_short = (uint64_t)0 - (uint64_t)shorter;  /* all ones or zero: no branch */
    se_decimal r;
    r.digits = (r_short & pick_short) | (r_same & ~pick_short);
    r.exponent = k;
    return r;
}

/* The float64-table conversion, inlined into its callers so that the common case (a normal
 * float64, regular spacing) is compiled with lower_closer = 0 folded in. */
#if defined(__SIZEOF_INT128__) && !defined(SE_NO_INT128)
/* The same values as the portable version below: p -/+ g << (h + 1) is the product of g
 * with (cb -/+ 2) << h exactly (cb - 1 for lower_closer), so on 128-bit integers each end is
 * its own 64x128-bit multiply, cheaper than the 192-bit sums. */
static inline uint64_t round_to_odd_product(uint64_t cp, const uint64_t *g)
{
    se_u128 lo = (se_u128)cp * g[1];
    se_u128 top = (se_u128)cp * g[0] + (uint64_t)(lo >> 64);  /* floor(cp * g / 2**64) */
    return (uint64_t)(top >> 63) | (((uint64_t)top << 1) != 0);
}

/* With k given as its table index and h given (looked up per exponent by the float32 loop). */
static inline se_decimal convert64_at(uint64_t c, int k_index, int h, int lower_closer)
{
    uint64_t out = c & 1;
    uint64_t cb = c << 2;
    int k = k_index + SE_G64_K_MIN;
    const uint64_t *g = se_g64[k_index];
    uint64_t vb = round_to_odd_product(cb << h, g);
    uint64_t vbl = round_to_odd_product((cb - 2 + (uint64_t)lower_closer) << h, g);
    uint64_t vbr = round_to_odd_product((cb + 2) << h, g);
    return choose(vb, vbl, vbr, out, k);
}

static inline se_decimal convert64(uint64_t c, int q, int lower_closer)
{
    int k = lower_closer ? floor_log10_three_quarters_pow2(q) : floor_log10_pow2(q);
    return convert64_at(c, k - SE_G64_K_MIN, q + floor_log2_pow10(-k) + 2, lower_closer);
}
#else
static inline se_decimal convert64_at(uint64_t c, int k_index, int h, int lower_closer)
{
    uint64_t out = c & 1;
    uint64_t cb = c << 2;
    int k = k_index + SE_G64_K_MIN;
    const uint64_t *g = se_g64[k_index];
    /* (cb -/+ 2) << h times g = cp * g -/+ g << (h + 1); cbl = cb - 1: g << h */
    u192 p = mul_64x128(cb << h, g);
    uint64_t vb = round_to_odd_64(p);
    uint64_t vbl = round_to_odd_64(sub192(p, shift_g(g, h + 1 - lower_closer)));
    uint64_t vbr = round_to_odd_64(add192(p, shift_g(g, h + 1)));
    return choose(vb, vbl, vbr, out, k);
}

static inline se_decimal convert64(uint64_t c, int q, int lower_closer)
{
    int k = lower_closer ? floor_log10_three_quarters_pow2(q) : floor_log10_pow2(q);
    return convert64_at(c, k - SE_G64_K_MIN, q + floor_log2_pow10(-k) + 2, lower_closer);
}
#endif

/* The float32-table conversion of c * 2**q (c < 2**24, a float32's range of q), with k as
 * its table index and h given. */
static inline se_decimal convert32_at(uint64_t c, int k_index, int h, int lower_closer)
{
    uint64_t out = c & 1;
    uint64_t cb = c << 2;
    int k = k_index + SE_G32_K_MIN;
    uint64_t g = se_g32[k_index];
    /* each end its own product, with (cb -/+ 2) << h (cb - 1 for lower_closer): exactly
     * cp * g -/+ g << (h + 1) (or g << h), one multiply instead of 128-bit sums */
    uint64_t lo;
    uint64_t vb = round_to_odd_32(mul_hi64(g, cb << h, &lo));
    uint64_t vbl = round_to_odd_32(mul_hi64(g, (cb - 2 + (uint64_t)lower_closer) << h, &lo));
    uint64_t vbr = round_to_odd_32(mul_hi64(g, (cb + 2) << h, &lo));
    return choose(vb, vbl, vbr, out, k);
}

static inline se_decimal convert32(uint64_t c, int q, int lower_closer)
{
    int k = lower_closer ? floor_log10_three_quarters_pow2(q) : floor_log10_pow2(q);
    return convert32_at(c, k - SE_G32_K_MIN, q + floor_log2_pow10(-k) + 33, lower_closer);
}

#endif /* SE_SCHUBFACH_H */
