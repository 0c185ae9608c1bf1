/* The floats' digits four lanes at a time with AVX2: see se_simd.h.
 *
 * For CPUs without AVX-512 IFMA (AMD Zen 2 and 3, Intel before Ice Lake: much of the
 * CI fleet), whose floats would otherwise take the scalar path. The arithmetic is
 * se_simd.c's kernels (Schubfach), with the products in 32-bit limbs instead of IFMA's
 * 52-bit ones. float32 exact mode (the float32 widened to float64):
 *
 * W = m * g for the significand m < 2**24 and the 126-bit g = g3:g2:g1:g0 (32-bit
 * words) is four 32x32-bit products, carried into limbs w0..w3 (w3 holds the rest,
 * below 2**55). The interval's ends are W -/+ floor(g / 2**30) (minus one more on the
 * low side when g's low 30 bits are not zero), exactly as the AVX-512 kernel has them.
 * Schubfach's value is floor(W / 2**(96 - h)), made odd when bits [33 - h, 96 - h) of W
 * are not all zero; then its choice of digits, and the digits as se_put_layout takes
 * them. float64 is the same with c = 2**52 + t in two limbs (eight products, six limbs);
 * float32 shortest needs only 64-bit products (se_g32). 64-bit lanes compare as signed
 * numbers here: every value is below 2**60.
 */
#include "se_simd.h"

#include <string.h>

#include "se_tables.h"

#if SE_HAVE_X86_TARGETS
#include <immintrin.h>

#define SE_AVX2 __attribute__((target("avx2")))

typedef __m256i v4;

#define M32 0xffffffffULL

SE_AVX2 static inline v4 c64(uint64_t v) { return _mm256_set1_epi64x((long long)v); }
SE_AVX2 static inline v4 add(v4 a, v4 b) { return _mm256_add_epi64(a, b); }
SE_AVX2 static inline v4 sub(v4 a, v4 b) { return _mm256_sub_epi64(a, b); }
SE_AVX2 static inline v4 and(v4 a, v4 b) { return _mm256_and_si256(a, b); }
SE_AVX2 static inline v4 or(v4 a, v4 b) { return _mm256_or_si256(a, b); }
SE_AVX2 static inline v4 mul32(v4 a, v4 b) { return _mm256_mul_epu32(a, b); }  /* low halves */
SE_AVX2 static inline v4 gt(v4 a, v4 b) { return _mm256_cmpgt_epi64(a, b); }   /* all ones */
/* a <= b as b + 1 > a (lanes below 2**60), not as the complement of a > b: GCC 12 with
 * AVX-512VL enabled (-march=native on an AVX-512 CPU) turns a blend on a complemented mask
 * into a blend on the uncomplemented one with its inputs left in place, so every choice
 * went the wrong way. */
SE_AVX2 static inline v4 le(v4 a, v4 b) { return gt(add(b, c64(1)), a); }
SE_AVX2 static inline v4 is_zero(v4 a) { return _mm256_cmpeq_epi64(a, _mm256_setzero_si256()); }
/* mask ? yes : no, lane by lane, for masks of all ones or zeros. By the sign of each 64-bit
 * lane (blendvpd), not of each byte: GCC 12 built with -funsigned-char folds
 * _mm256_blendv_epi8 on a byte's "sign" as if it were unsigned, to `no` always. */
SE_AVX2 static inline v4 pick(v4 mask, v4 yes, v4 no)
{
    return _mm256_castpd_si256(_mm256_blendv_pd(_mm256_castsi256_pd(no), _mm256_castsi256_pd(yes),
                                                _mm256_castsi256_pd(mask)));
}

/* x mod 10 for x < 2**58 (se_simd.c's mod10). */
SE_AVX2 static inline v4 mod10(v4 x)
{
    const v4 magic = c64(0xCCCCCCCDULL), ten = c64(10);
    v4 lo = and(x, c64(M32));
    v4 lo_rem = sub(lo, mul32(_mm256_srli_epi64(mul32(lo, magic), 35), ten));
    v4 v = add(mul32(_mm256_srli_epi64(x, 32), c64(6)), lo_rem);
    return sub(v, mul32(_mm256_srli_epi64(mul32(v, magic), 35), ten));
}

/* floor(W / 2**(96 - h)), made odd when bits [33 - h, 96 - h) of W are not all zero. */
SE_AVX2 static inline v4 round_to_odd(v4 w0, v4 w1, v4 w2, v4 w3, v4 h)
{
    v4 down = sub(c64(32), h);
    v4 r = or(_mm256_sllv_epi64(w3, h), _mm256_srlv_epi64(w2, down));
    v4 below = sub(_mm256_sllv_epi64(c64(1), down), c64(1));
    v4 sticky = or(or(and(w2, below), w1), _mm256_srlv_epi64(w0, sub(c64(33), h)));
    return or(r, _mm256_andnot_si256(is_zero(sticky), c64(1)));
}

/* Schubfach's choice (se_schubfach.h: choose; se_simd.c's choose8): out is 1 where the
 * interval's ends are excluded, else 0. */
SE_AVX2 static inline v4 choose(v4 vb, v4 vbl, v4 vbr, v4 out)
{
    v4 s = _mm256_srli_epi64(vb, 2);
    v4 t = add(s, c64(1));
    v4 sp10 = sub(s, mod10(s));
    v4 tp10 = add(sp10, c64(10));
    v4 low_end = add(vbl, out);
    v4 upin = le(low_end, _mm256_slli_epi64(sp10, 2));
    v4 wpin = le(add(_mm256_slli_epi64(tp10, 2), out), vbr);
    v4 shorter = and(_mm256_xor_si256(upin, wpin), gt(s, c64(9)));
    v4 r_short = pick(upin, sp10, tp10);
    v4 uin = le(low_end, _mm256_slli_epi64(s, 2));
    v4 win = le(add(_mm256_slli_epi64(t, 2), out), vbr);
    v4 tie_side = add(and(vb, c64(3)), and(s, c64(1)));
    v4 closer_s = le(tie_side, c64(2));
    v4 one_in = _mm256_xor_si256(uin, win);
    v4 take_s = or(and(one_in, uin), _mm256_andnot_si256(one_in, closer_s));
    return pick(shorter, r_short, pick(take_s, s, t));
}

/* The 8 decimal digits of each lane's x < 10**8 as byte values, the first in the lowest
 * byte (se_simd.c's eight_digits8). */
SE_AVX2 static inline v4 eight_digits(v4 x)
{
    v4 q = _mm256_srli_epi64(mul32(x, c64(109951163)), 40);
    v4 r = sub(x, mul32(q, c64(10000)));
    v4 v = or(q, _mm256_slli_epi64(r, 32));
    q = _mm256_srli_epi16(_mm256_mulhi_epu16(v, _mm256_set1_epi32(5243)), 3);
    r = _mm256_sub_epi16(v, _mm256_mullo_epi16(q, _mm256_set1_epi32(100)));
    v = or(q, _mm256_slli_epi32(r, 16));
    q = _mm256_mulhi_epu16(v, _mm256_set1_epi16(6554));
    r = _mm256_sub_epi16(v, _mm256_mullo_epi16(q, _mm256_set1_epi16(10)));
    return or(q, _mm256_slli_epi16(r, 8));
}

/* Exact float64 of a lane below 2**52. */
SE_AVX2 static inline __m256d to_double(v4 x)
{
    const v4 two52 = c64(0x4330000000000000ULL);
    return _mm256_sub_pd(_mm256_castsi256_pd(or(x, two52)), _mm256_castsi256_pd(two52));
}

/* x / 10**8 and x mod 10**8 for x < 2**57 (se_simd.c does it with IFMA): x as the nearest
 * float64 (its two parts exact, one rounding in their sum), the quotient truncated,
 * then one correction each way. */
SE_AVX2 static inline v4 divmod_1e8(v4 x, v4 *rem)
{
    const v4 d = c64(100000000);
    __m256d xd = _mm256_add_pd(_mm256_mul_pd(to_double(_mm256_srli_epi64(x, 26)),
                                             _mm256_set1_pd(67108864.0)),  /* 2**26 */
                               to_double(and(x, c64((1ULL << 26) - 1))));
    __m256d qd = _mm256_round_pd(_mm256_mul_pd(xd, _mm256_set1_pd(1e-8)),
                                 _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256d two52 = _mm256_set1_pd(4503599627370496.0);
    v4 q = _mm256_xor_si256(_mm256_castpd_si256(_mm256_add_pd(qd, two52)),
                            _mm256_castpd_si256(two52));  /* q < 2**31 */
    v4 r = sub(x, mul32(q, d));
    v4 under = gt(_mm256_setzero_si256(), r);
    q = add(q, under);  /* -1 where under */
    r = add(r, and(under, d));
    v4 over = gt(r, sub(d, c64(1)));
    q = sub(q, over);
    *rem = sub(r, and(over, d));
    return q;
}

/* How many of the sixteen digits m, l (byte values, first digit lowest) are significant,
 * up to the last non-zero one, into out->more[at .. at + 4): from the bytes' zero masks
 * (AVX2 has no lzcnt of lanes). */
SE_AVX2 static inline void put_significant(v4 m, v4 l, se_digits *out, int at)
{
    uint32_t l_bytes = ~(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(l, _mm256_setzero_si256()));
    uint32_t m_bytes = ~(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(m, _mm256_setzero_si256()));
    for (int j = 0; j < 4; j++) {
        uint32_t lj = l_bytes >> (8 * j) & 0xff, mj = m_bytes >> (8 * j) & 0xff;
        out->more[at + j] = lj ? 8 + (32 - __builtin_clz(lj)) : mj ? 32 - __builtin_clz(mj) : 0;
    }
}

/* digits * 10**k -> se_put_layout's pieces for lanes [at, at + 4) (se_simd.c's
 * write_out). */
SE_AVX2 static inline void write_out(v4 digits, v4 k, se_digits *out, int at)
{
    v4 big = gt(digits, c64(9999999999999999ULL));
    v4 s17 = pick(big, digits, add(_mm256_slli_epi64(digits, 3), _mm256_slli_epi64(digits, 1)));
    v4 e = sub(add(k, c64(15)), big);  /* + 1 where big */
    v4 lo8;
    v4 hi9 = divmod_1e8(s17, &lo8);
    v4 first = _mm256_srli_epi64(mul32(hi9, c64(1441151881)), 57);
    v4 mid8 = sub(hi9, mul32(first, c64(100000000)));
    v4 m = eight_digits(mid8), l = eight_digits(lo8);
    put_significant(m, l, out, at);
    const v4 ascii = c64(0x3030303030303030ULL);
    _mm256_storeu_si256((v4 *)(void *)(out->first + at), first);
    _mm256_storeu_si256((v4 *)(void *)(out->wm + at), add(m, ascii));
    _mm256_storeu_si256((v4 *)(void *)(out->wl + at), add(l, ascii));
    _mm256_storeu_si256((v4 *)(void *)(out->e + at), e);
}

/* The lanes' mask of "regular" elements (fraction and exponent not zero, exponent not all
 * ones: e_max), as four bits. */
SE_AVX2 static inline uint32_t regular_mask(v4 t, v4 e, uint64_t e_max)
{
    v4 irregular = or(or(is_zero(t), is_zero(e)), _mm256_cmpeq_epi64(e, c64(e_max)));
    return ~(uint32_t)_mm256_movemask_pd(_mm256_castsi256_pd(irregular)) & 0xf;
}

/* k index and h of each lane's exponent from a {k index, h} table (se_tables.h), whose
 * entries for exponents 0 and e_max are valid copies: no mask needed. */
SE_AVX2 static inline void gather_kh(v4 e, const int16_t (*table)[2], v4 *k_index, v4 *h)
{
    v4 kh = _mm256_cvtepu32_epi64(_mm256_i64gather_epi32((const int *)(const void *)table, e, 4));
    *k_index = and(kh, c64(0xffff));
    *h = _mm256_srli_epi64(kh, 16);
}

/* se_g64[k] = {g >> 64, g mod 2**64}: words 2k and 2k + 1. */
SE_AVX2 static inline void gather_g64(v4 k_index, v4 *hi, v4 *lo)
{
    v4 at = add(k_index, k_index);
    *hi = _mm256_i64gather_epi64((const long long *)(const void *)se_g64, at, 8);
    *lo = _mm256_i64gather_epi64((const long long *)(const void *)se_g64, add(at, c64(1)), 8);
}

/* An entry point (se_simd.h): one block of eight elements as two groups of four, or the
 * SE_SIMD_WIDTH / 8 = 4 blocks as two calls of four groups. */
#define AVX2_ENTRY(NAME, GROUPS, BLOCK_BYTES)                                            \
    SE_AVX2 uint32_t NAME(const unsigned char *bits, int blocks, se_digits *out)         \
    {                                                                                    \
        uint32_t regular = 0;                                                            \
        if (blocks == 1)                                                                 \
            return GROUPS(bits, out, 0, 2);                                              \
        for (int b = 0; b < blocks; b += 2)                                              \
            regular |= GROUPS(bits + (BLOCK_BYTES) * b, out, 8 * b, 4) << (8 * b);       \
        return regular;                                                                  \
    }

/* `halves` groups of four elements at bits -> lanes [at, at + 4 * halves) of *out; returns
 * their regular mask. Each step is done for every group before the next step, so that
 * the groups' chains of dependent products run side by side (two groups instead of one
 * after the other: ~10% faster; four: ~5% more). `halves` is a constant at each call. */
#define MAX_HALVES 4
#define EACH(i) for (int i = 0; i < halves; i++)

SE_AVX2 static inline __attribute__((always_inline)) uint32_t f32_exact_groups(const unsigned char *bits,
                                                                              se_digits *out, int at,
                                                                              const int halves)
{
    v4 m[MAX_HALVES], k_index[MAX_HALVES], h[MAX_HALVES], lo[MAX_HALVES], hi[MAX_HALVES];
    v4 w[MAX_HALVES][4], r[MAX_HALVES][4], l[MAX_HALVES][4];
    uint32_t regular = 0;
    EACH(i) {
        v4 x = _mm256_cvtepu32_epi64(_mm_loadu_si128((const __m128i *)(const void *)(bits + 16 * i)));
        v4 e = and(_mm256_srli_epi64(x, 23), c64(0xff));
        v4 t = and(x, c64((1u << 23) - 1));
        regular |= regular_mask(t, e, 0xff) << (4 * i);
        m[i] = or(t, c64(1u << 23));
        gather_kh(e, se_f32_exact_kh, &k_index[i], &h[i]);
    }
    if (!regular)
        return 0;
    EACH(i) gather_g64(k_index[i], &hi[i], &lo[i]);
    EACH(i) {
        /* W = m * g in 32-bit limbs */
        v4 p0 = mul32(m[i], lo[i]), p1 = mul32(m[i], _mm256_srli_epi64(lo[i], 32));
        v4 p2 = mul32(m[i], hi[i]), p3 = mul32(m[i], _mm256_srli_epi64(hi[i], 32));
        w[i][0] = and(p0, c64(M32));
        v4 carry = add(_mm256_srli_epi64(p0, 32), p1);
        w[i][1] = and(carry, c64(M32));
        carry = add(_mm256_srli_epi64(carry, 32), p2);
        w[i][2] = and(carry, c64(M32));
        w[i][3] = add(_mm256_srli_epi64(carry, 32), p3);
    }
    EACH(i) {
        /* G = floor(g / 2**30) in 32-bit limbs, and 1 where g's low 30 bits are not zero */
        v4 g_low = or(_mm256_srli_epi64(lo[i], 30), _mm256_slli_epi64(hi[i], 34));
        v4 gq[3] = {and(g_low, c64(M32)), _mm256_srli_epi64(g_low, 32),
                    _mm256_srli_epi64(hi[i], 30)};
        v4 borrow = add(is_zero(and(lo[i], c64((1u << 30) - 1))), c64(1));
        /* the high end W + G, and the low end W - G - borrow (each limb lent 2**32, paid
         * back by the next) */
        const v4 lend = c64(1ULL << 32);
        v4 carry = _mm256_setzero_si256(), owe = borrow;
        for (int j = 0; j < 3; j++) {
            carry = add(add(carry, w[i][j]), gq[j]);
            r[i][j] = and(carry, c64(M32));
            carry = _mm256_srli_epi64(carry, 32);
            v4 diff = sub(add(w[i][j], lend), add(gq[j], owe));
            l[i][j] = and(diff, c64(M32));
            owe = _mm256_xor_si256(_mm256_srli_epi64(diff, 32), c64(1));
        }
        r[i][3] = add(carry, w[i][3]);
        l[i][3] = sub(w[i][3], owe);
    }
    EACH(i) {
        v4 vb = round_to_odd(w[i][0], w[i][1], w[i][2], w[i][3], h[i]);
        v4 vbl = round_to_odd(l[i][0], l[i][1], l[i][2], l[i][3], h[i]);
        v4 vbr = round_to_odd(r[i][0], r[i][1], r[i][2], r[i][3], h[i]);
        /* c = m << 29 is even: the interval's ends are included (out = 0) */
        write_out(choose(vb, vbl, vbr, _mm256_setzero_si256()),
                  add(k_index[i], c64((uint64_t)(int64_t)SE_G64_K_MIN)), out, at + 4 * i);
    }
    return regular;
}

AVX2_ENTRY(se_simd_avx2_f32_exact_digits, f32_exact_groups, 32)

/* ---- float64 (se_simd.c's f64_kernel) ------------------------------------------------------ */

/* floor(Z / 2**(126 - h)) for Z in six 32-bit limbs, made odd when bits [63 - h, 126 - h)
 * of Z are not all zero. */
SE_AVX2 static inline v4 round_to_odd6(const v4 *z, v4 h)
{
    v4 down = sub(c64(30), h);  /* bit 126 - h is bit 30 - h of limb 3 */
    v4 r = or(or(_mm256_srlv_epi64(z[3], down), _mm256_sllv_epi64(z[4], add(h, c64(2)))),
              _mm256_sllv_epi64(z[5], add(h, c64(34))));
    v4 below = sub(_mm256_sllv_epi64(c64(1), down), c64(1));
    v4 sticky = or(or(_mm256_srlv_epi64(z[1], sub(c64(31), h)), z[2]), and(z[3], below));
    return or(r, _mm256_andnot_si256(is_zero(sticky), c64(1)));
}

/* Limbs in (-2**34, 2**60) carried into 32-bit ones, the top limb keeping the rest: each
 * is biased by 2**34 so that the carry is a logical shift (AVX2 has no arithmetic shift of
 * 64-bit lanes). */
SE_AVX2 static inline void carry32(v4 *z, int n)
{
    const v4 bias = c64(1ULL << 34);
    for (int i = 0; i + 1 < n; i++) {
        v4 biased = add(z[i], bias);
        z[i + 1] = add(z[i + 1], sub(_mm256_srli_epi64(biased, 32), c64(4)));
        z[i] = and(biased, c64(M32));
    }
}

SE_AVX2 static inline __attribute__((always_inline)) uint32_t f64_groups(
    const unsigned char *bits, se_digits *out, int at, const int halves)
{
    v4 t[MAX_HALVES], k_index[MAX_HALVES], h[MAX_HALVES], vb[MAX_HALVES][3];
    v4 g[MAX_HALVES][4];
    uint32_t regular = 0;
    EACH(i) {
        v4 x = _mm256_loadu_si256((const v4 *)(const void *)(bits + 32 * i));
        v4 e = and(_mm256_srli_epi64(x, 52), c64(0x7ff));
        t[i] = and(x, c64((1ULL << 52) - 1));
        regular |= regular_mask(t[i], e, 0x7ff) << (4 * i);
        gather_kh(e, se_f64_kh, &k_index[i], &h[i]);
    }
    if (!regular)
        return 0;
    EACH(i) {
        v4 hi, lo;
        gather_g64(k_index[i], &hi, &lo);
        g[i][0] = and(lo, c64(M32));
        g[i][1] = _mm256_srli_epi64(lo, 32);
        g[i][2] = and(hi, c64(M32));
        g[i][3] = _mm256_srli_epi64(hi, 32);
    }
    EACH(i) {
        /* W = c * g, c = 2**52 + t = c1:c0 (c1 < 2**21): each 32x32-bit product split into
         * its halves, which add up by column (at most four terms below 2**32 each) */
        v4 c0 = and(t[i], c64(M32)), c1 = or(_mm256_srli_epi64(t[i], 32), c64(1u << 20));
        v4 w[6];
        for (int k = 0; k < 6; k++)
            w[k] = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {
            v4 p0 = mul32(c0, g[i][j]), p1 = mul32(c1, g[i][j]);
            w[j] = add(w[j], and(p0, c64(M32)));
            w[j + 1] = add(add(w[j + 1], _mm256_srli_epi64(p0, 32)), and(p1, c64(M32)));
            w[j + 2] = add(w[j + 2], _mm256_srli_epi64(p1, 32));
        }
        /* Z = 2W + d * g, d = 0, -1, 1, limb by limb, then carried */
        v4 z[6], zl[6], zr[6];
        for (int k = 0; k < 6; k++) {
            z[k] = add(w[k], w[k]);
            zl[k] = k < 4 ? sub(z[k], g[i][k]) : z[k];
            zr[k] = k < 4 ? add(z[k], g[i][k]) : z[k];
        }
        carry32(z, 6);
        carry32(zl, 6);
        carry32(zr, 6);
        vb[i][0] = round_to_odd6(z, h[i]);
        vb[i][1] = round_to_odd6(zl, h[i]);
        vb[i][2] = round_to_odd6(zr, h[i]);
    }
    EACH(i) {
        write_out(choose(vb[i][0], vb[i][1], vb[i][2], and(t[i], c64(1))),
                  add(k_index[i], c64((uint64_t)(int64_t)SE_G64_K_MIN)), out, at + 4 * i);
    }
    return regular;
}

AVX2_ENTRY(se_simd_avx2_f64_digits, f64_groups, 64)

/* ---- float32 shortest (se_simd.c's f32_shortest_kernel) --------------------------------- */

static const uint64_t pow10_9[10] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000,
                                     100000000, 1000000000};

SE_AVX2 static inline v4 pow10_of(v4 n)
{
    return _mm256_i64gather_epi64((const long long *)(const void *)pow10_9, n, 8);
}

/* floor(Q / 2**(95 - h)) for Q = x * g (x < 2**27, g < 2**64 as its 32-bit halves), made odd
 * when bits [64 - h, 95 - h) of Q are not all zero (se_simd.c's round_to_odd_q). */
SE_AVX2 static inline v4 round_to_odd_q(v4 x, v4 g_lo, v4 g_hi, v4 h)
{
    v4 a = mul32(x, g_lo);
    v4 b = add(mul32(x, g_hi), _mm256_srli_epi64(a, 32));
    v4 down = sub(c64(63), h);
    v4 r = _mm256_srlv_epi64(b, down);
    v4 sticky = or(_mm256_srlv_epi64(and(a, c64(M32)), sub(c64(64), h)),
                   and(b, sub(_mm256_sllv_epi64(c64(1), down), c64(1))));
    return or(r, _mm256_andnot_si256(is_zero(sticky), c64(1)));
}

/* digits * 10**k (1 <= digits < 10**9) -> se_put_layout's pieces for lanes [at, at + 4)
 * (se_simd.c's write_out9). The digit count from the bit length, which the exponent of the
 * exact float64 of digits gives, corrected by one compare. */
SE_AVX2 static inline void write_out9(v4 digits, v4 k, se_digits *out, int at)
{
    v4 bits = sub(_mm256_srli_epi64(_mm256_castpd_si256(to_double(digits)), 52), c64(1022));
    v4 n = _mm256_srli_epi64(mul32(bits, c64(1233)), 12);
    n = sub(n, gt(digits, sub(pow10_of(n), c64(1))));  /* + 1 where digits >= 10**n */
    v4 s9 = mul32(digits, pow10_of(sub(c64(9), n)));
    v4 first = _mm256_srli_epi64(mul32(s9, c64(1441151881)), 57);
    v4 m = eight_digits(sub(s9, mul32(first, c64(100000000))));
    put_significant(m, _mm256_setzero_si256(), out, at);
    const v4 ascii = c64(0x3030303030303030ULL);
    _mm256_storeu_si256((v4 *)(void *)(out->first + at), first);
    _mm256_storeu_si256((v4 *)(void *)(out->wm + at), add(m, ascii));
    _mm256_storeu_si256((v4 *)(void *)(out->wl + at), ascii);
    _mm256_storeu_si256((v4 *)(void *)(out->e + at), add(k, sub(n, c64(1))));
}

SE_AVX2 static inline __attribute__((always_inline)) uint32_t f32_shortest_groups(
    const unsigned char *bits, se_digits *out, int at, const int halves)
{
    v4 m[MAX_HALVES], k_index[MAX_HALVES], h[MAX_HALVES], g[MAX_HALVES];
    uint32_t regular = 0;
    const float padded_from = 1e10f, padded_to = 1e16f;  /* se_put_f32_shortest_bits */
    uint32_t from_bits, to_bits;
    memcpy(&from_bits, &padded_from, 4);
    memcpy(&to_bits, &padded_to, 4);
    EACH(i) {
        v4 x = _mm256_cvtepu32_epi64(_mm_loadu_si128((const __m128i *)(const void *)(bits + 16 * i)));
        v4 e = and(_mm256_srli_epi64(x, 23), c64(0xff));
        v4 t = and(x, c64((1u << 23) - 1));
        v4 magnitude = and(x, c64(0x7fffffff));
        v4 padded = _mm256_andnot_si256(gt(c64(from_bits), magnitude), gt(c64(to_bits), magnitude));
        uint32_t not_padded = (uint32_t)_mm256_movemask_pd(_mm256_castsi256_pd(padded)) ^ 0xf;
        regular |= (regular_mask(t, e, 0xff) & not_padded) << (4 * i);
        m[i] = or(t, c64(1u << 23));
        gather_kh(e, se_f32_shortest_kh, &k_index[i], &h[i]);
    }
    if (!regular)
        return 0;
    EACH(i) g[i] = _mm256_i64gather_epi64((const long long *)(const void *)se_g32, k_index[i], 8);
    EACH(i) {
        v4 g_lo = and(g[i], c64(M32)), g_hi = _mm256_srli_epi64(g[i], 32);
        v4 cb = _mm256_slli_epi64(m[i], 2);
        v4 vb = round_to_odd_q(cb, g_lo, g_hi, h[i]);
        v4 vbl = round_to_odd_q(sub(cb, c64(2)), g_lo, g_hi, h[i]);
        v4 vbr = round_to_odd_q(add(cb, c64(2)), g_lo, g_hi, h[i]);
        v4 digits = choose(vb, vbl, vbr, and(m[i], c64(1)));
        write_out9(digits, add(k_index[i], c64((uint64_t)(int64_t)SE_G32_K_MIN)), out, at + 4 * i);
    }
    return regular;
}

AVX2_ENTRY(se_simd_avx2_f32_shortest_digits, f32_shortest_groups, 32)

#else /* no x86 vector path compiled */

uint32_t se_simd_avx2_f32_exact_digits(const unsigned char *bits, int blocks, se_digits *out)
{
    (void)bits;
    (void)blocks;
    (void)out;
    return 0;
}

uint32_t se_simd_avx2_f32_shortest_digits(const unsigned char *bits, int blocks, se_digits *out)
{
    (void)bits;
    (void)blocks;
    (void)out;
    return 0;
}

uint32_t se_simd_avx2_f64_digits(const unsigned char *bits, int blocks, se_digits *out)
{
    (void)bits;
    (void)blocks;
    (void)out;
    return 0;
}
#endif
