/* Schubfach: see se_shortest.h. Notation follows the paper: the value is c * 2**q, its
 * rounding interval is [c - 1/2, c + 1/2] * 2**q (the lower end c - 1/4 when the value is
 * a power of two whose lower neighbour is closer), ends included when c is even. With
 * k = floor(log10(width)), the interval is scaled by 10**-k and by 4 (two fraction bits),
 * each end computed once, rounded to odd, which keeps every comparison with an even
 * integer exact. */
#include "se_shortest.h"

#include <string.h>

#include "se_tables.h"

#if defined(__SIZEOF_INT128__)
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

/* cp * g / 2**127 rounded to odd, g = hi * 2**64 + lo (126 bits), the fraction kept to
 * 63 bits and truncated: m = floor(cp * g / 2**64). */
static inline uint64_t round_to_odd_64(const uint64_t g[2], uint64_t cp)
{
    uint64_t lo_lo, hi_lo;
    uint64_t lo_hi = mul_hi64(cp, g[1], &lo_lo);
    uint64_t hi_hi = mul_hi64(cp, g[0], &hi_lo);
    uint64_t m_lo = hi_lo + lo_hi;
    uint64_t m_hi = hi_hi + (m_lo < hi_lo);
    uint64_t value = (m_hi << 1) | (m_lo >> 63);
    return value | ((m_lo & 0x7fffffffffffffffULL) != 0);
}

/* cp * g / 2**95 rounded to odd, g of 63 bits, the fraction kept to 31 bits. */
static inline uint64_t round_to_odd_32(uint64_t g, uint64_t cp)
{
    uint64_t lo;
    uint64_t x = mul_hi64(g, cp, &lo);
    return (x >> 31) | ((x & 0x7fffffffULL) != 0);
}

/* The choice among the candidates, shared by both widths. vb, vbl, vbr: 4 * 10**-k times
 * the value and the interval's ends, rounded to odd; out: 1 when the ends are excluded. */
static inline se_decimal choose(uint64_t vb, uint64_t vbl, uint64_t vbr, uint64_t out, int k)
{
    se_decimal r;
    uint64_t s = vb >> 2;
    if (s >= 10) {
        /* one digit fewer: at most one multiple of ten fits, the interval being < 10 wide */
        uint64_t sp10 = 10 * (s / 10);
        uint64_t tp10 = sp10 + 10;
        int upin = vbl + out <= sp10 << 2;
        int wpin = (tp10 << 2) + out <= vbr;
        if (upin != wpin) {
            r.digits = upin ? sp10 : tp10;
            r.exponent = k;
            return r;
        }
    }
    uint64_t t = s + 1;
    int uin = vbl + out <= s << 2;
    int win = (t << 2) + out <= vbr;
    if (uin != win) {
        r.digits = uin ? s : t;
    } else {
        /* both inside: the closer one, s on a tie when s is even */
        uint64_t mid = (s << 2) + 2;
        r.digits = (vb < mid || (vb == mid && (s & 1) == 0)) ? s : t;
    }
    r.exponent = k;
    return r;
}

se_decimal se_shortest_binary(uint64_t c, int q, int lower_closer)
{
    uint64_t out = c & 1;
    uint64_t cb = c << 2;
    uint64_t cbr = cb + 2;
    uint64_t cbl;
    int k;
    if (lower_closer) {
        cbl = cb - 1;
        k = floor_log10_three_quarters_pow2(q);
    } else {
        cbl = cb - 2;
        k = floor_log10_pow2(q);
    }
    int h = q + floor_log2_pow10(-k) + 2;
    const uint64_t *g = se_g64[k - SE_G64_K_MIN];
    uint64_t vb = round_to_odd_64(g, cb << h);
    uint64_t vbl = round_to_odd_64(g, cbl << h);
    uint64_t vbr = round_to_odd_64(g, cbr << h);
    return choose(vb, vbl, vbr, out, k);
}

se_decimal se_shortest_f64(double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    uint64_t t = bits & ((1ULL << 52) - 1);
    int e = (int)((bits >> 52) & 0x7ff);
    if (e == 0)
        return se_shortest_binary(t, -1074, 0);
    return se_shortest_binary(t | (1ULL << 52), e - 1075, t == 0 && e > 1);
}

se_decimal se_shortest_f32(float v)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    uint64_t t = bits & ((1u << 23) - 1);
    int e = (int)((bits >> 23) & 0xff);
    uint64_t c;
    int q, lower_closer;
    if (e == 0) {
        c = t;
        q = -149;
        lower_closer = 0;
    } else {
        c = t | (1u << 23);
        q = e - 150;
        lower_closer = t == 0 && e > 1;
    }
    uint64_t out = c & 1;
    uint64_t cb = c << 2;
    uint64_t cbr = cb + 2;
    uint64_t cbl;
    int k;
    if (lower_closer) {
        cbl = cb - 1;
        k = floor_log10_three_quarters_pow2(q);
    } else {
        cbl = cb - 2;
        k = floor_log10_pow2(q);
    }
    int h = q + floor_log2_pow10(-k) + 33;
    uint64_t g = se_g32[k - SE_G32_K_MIN];
    uint64_t vb = round_to_odd_32(g, cb << h);
    uint64_t vbl = round_to_odd_32(g, cbl << h);
    uint64_t vbr = round_to_odd_32(g, cbr << h);
    return choose(vb, vbl, vbr, out, k);
}
