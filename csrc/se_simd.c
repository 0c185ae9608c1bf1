/* Eight floats' decimal digits at once: see se_simd.h.
 *
 * The arithmetic is se_schubfach.h's, lane by lane. A conversion there rounds to odd
 * three products X = cp * g (cp = (4c - 2, 4c or 4c + 2) << h, g the 126-bit power of ten
 * of the exponent): r = floor(X / 2**127), made odd when bits [64, 127) of X are not all
 * zero. With cp = 2**(h + 1) * (2c + d), d in {-1, 0, 1}, that is, for Z = (2c + d) * g,
 * r = floor(Z / 2**(126 - h)) | (bits [63 - h, 126 - h) of Z != 0). Z is computed here in
 * 52-bit limbs held in 64-bit lanes, with the 52x52-bit multiply-adds of AVX-512 IFMA:
 * one c * g product (c = 2**52 + t: t * g, plus g one limb up), and Z = 2 * c * g + d * g
 * limb by limb; limbs may run over 52 bits (signed) until one carry pass at the end.
 * A float32 widened to float64 has c = m * 2**29 (m < 2**24): then only
 * W = floor(Z / 2**30) = m * g + floor(d * g / 2**30) matters (the bits looked at are all
 * above bit 30), a product of one limb.
 */
#include "se_simd.h"

#include <string.h>

#include "se_tables.h"

#if SE_HAVE_X86_TARGETS
#include <immintrin.h>

#define SE_TARGET __attribute__((target("avx512f,avx512dq,avx512bw,avx512cd,avx512ifma")))

static int cpu_supported(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512cd") &&
           __builtin_cpu_supports("avx512ifma");
}

static int avx2_supported(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}

/* -1: not asked yet; then 0 or 1. Racy first use only ever stores the same value. */
static int enabled = -1, avx2_enabled = -1;

int se_simd_enabled(void)
{
    if (enabled < 0)
        enabled = cpu_supported();
    return enabled;
}

int se_simd_avx2_enabled(void)
{
    if (avx2_enabled < 0)
        avx2_enabled = avx2_supported();
    return avx2_enabled;
}

int se_simd_set_enabled(int on)
{
    int previous = se_simd_enabled();
    enabled = on ? cpu_supported() : 0;
    avx2_enabled = on ? avx2_supported() : 0;
    return previous;
}

int se_simd_set_avx512(int on)
{
    int previous = se_simd_enabled();
    enabled = on ? cpu_supported() : 0;
    return previous;
}

#define LIMB 0xffffffffULL

SE_TARGET static inline __m512i set64(uint64_t v) { return _mm512_set1_epi64((long long)v); }
SE_TARGET static inline __m512i lo32(__m512i v) { return _mm512_and_si512(v, set64(LIMB)); }
SE_TARGET static inline __m512i hi32(__m512i v) { return _mm512_srli_epi64(v, 32); }

#define LIMB52 ((1ULL << 52) - 1)

/* The 126-bit g of each lane's table index, as 52-bit limbs (lowest first; the top one has
 * 22 bits), and its two 64-bit halves. */
typedef struct {
    __m512i l[3];
    __m512i hi64, lo64; /* g >> 64 and g mod 2**64 */
} g_limbs;

SE_TARGET static inline g_limbs gather_g(__m512i k_index, __mmask8 lanes)
{
    g_limbs g;
    __m512i at = _mm512_slli_epi64(k_index, 1);  /* se_g64[k] = {hi, lo}: word 2k, 2k + 1 */
    g.hi64 = _mm512_mask_i64gather_epi64(_mm512_setzero_si512(), lanes, at, se_g64, 8);
    g.lo64 = _mm512_mask_i64gather_epi64(_mm512_setzero_si512(), lanes,
                                         _mm512_add_epi64(at, set64(1)), se_g64, 8);
    g.l[0] = _mm512_and_si512(g.lo64, set64(LIMB52));
    g.l[1] = _mm512_and_si512(_mm512_or_si512(_mm512_srli_epi64(g.lo64, 52),
                                              _mm512_slli_epi64(g.hi64, 12)), set64(LIMB52));
    g.l[2] = _mm512_srli_epi64(g.hi64, 40);
    return g;
}

/* k index (low 16 bits) and h (high 16 bits) of se_*_kh[e], an int16_t[][2] table. */
SE_TARGET static inline void gather_kh(__m512i e, const int16_t (*table)[2], __m512i *k_index,
                                       __m512i *h)
{
    __m512i kh = _mm512_cvtepu32_epi64(_mm512_i64gather_epi32(e, (const void *)table, 4));
    *k_index = _mm512_and_si512(kh, set64(0xffff));
    *h = _mm512_srli_epi64(kh, 16);
}

/* Carries n signed, overlong limbs into 52-bit ones (the top limb keeps the rest). */
SE_TARGET static inline void carry52(__m512i *l, int n)
{
    for (int i = 0; i + 1 < n; i++) {
        l[i + 1] = _mm512_add_epi64(l[i + 1], _mm512_srai_epi64(l[i], 52));
        l[i] = _mm512_and_si512(l[i], set64(LIMB52));
    }
}

/* (1 << n) - 1 per lane. */
SE_TARGET static inline __m512i low_mask(__m512i n)
{
    return _mm512_sub_epi64(_mm512_sllv_epi64(set64(1), n), set64(1));
}

/* Rounding to odd from normalised 52-bit limbs l: the value is floor(Z / 2**(52 * (j + 1)
 * + sh)), taken from limbs j + 1 and j + 2; it is made odd when the bits below it that the
 * conversion looks at -- limb j from bit `from`, limb j + 1 below bit sh -- are not all
 * zero. */
SE_TARGET static inline __m512i round_to_odd(const __m512i *l, int j, __m512i sh, __m512i from)
{
    __m512i r = _mm512_or_si512(_mm512_srlv_epi64(l[j + 1], sh),
                                _mm512_sllv_epi64(l[j + 2], _mm512_sub_epi64(set64(52), sh)));
    __m512i sticky = _mm512_or_si512(_mm512_srlv_epi64(l[j], from),
                                     _mm512_and_si512(l[j + 1], low_mask(sh)));
    __mmask8 odd = _mm512_test_epi64_mask(sticky, sticky);
    return _mm512_mask_or_epi64(r, odd, r, set64(1));
}


/* x mod 10 for x < 2**58: x = hi * 2**32 + lo and 2**32 = 6 (mod 10); each step's
 * operand stays below 2**32, where (v * 0xCCCCCCCD) >> 35 = v / 10. */
SE_TARGET static inline __m512i mod10(__m512i x)
{
    const __m512i magic = set64(0xCCCCCCCDULL), ten = set64(10);
    __m512i lo = lo32(x);
    __m512i lo_rem = _mm512_sub_epi64(lo, _mm512_mul_epu32(_mm512_srli_epi64(_mm512_mul_epu32(lo, magic), 35), ten));
    __m512i v = _mm512_add_epi64(_mm512_mul_epu32(hi32(x), set64(6)), lo_rem);
    return _mm512_sub_epi64(v, _mm512_mul_epu32(_mm512_srli_epi64(_mm512_mul_epu32(v, magic), 35), ten));
}

/* Schubfach's choice (se_schubfach.h: choose) on eight lanes: the digits. */
SE_TARGET static inline __m512i choose8(__m512i vb, __m512i vbl, __m512i vbr, __m512i out)
{
    __m512i s = _mm512_srli_epi64(vb, 2);
    __m512i t = _mm512_add_epi64(s, set64(1));
    __m512i sp10 = _mm512_sub_epi64(s, mod10(s));
    __m512i tp10 = _mm512_add_epi64(sp10, set64(10));
    __m512i low_end = _mm512_add_epi64(vbl, out);
    __mmask8 upin = _mm512_cmple_epu64_mask(low_end, _mm512_slli_epi64(sp10, 2));
    __mmask8 wpin = _mm512_cmple_epu64_mask(_mm512_add_epi64(_mm512_slli_epi64(tp10, 2), out), vbr);
    __mmask8 shorter = (__mmask8)((upin ^ wpin) & _mm512_cmpge_epu64_mask(s, set64(10)));
    __m512i r_short = _mm512_mask_blend_epi64(upin, tp10, sp10);
    __mmask8 uin = _mm512_cmple_epu64_mask(low_end, _mm512_slli_epi64(s, 2));
    __mmask8 win = _mm512_cmple_epu64_mask(_mm512_add_epi64(_mm512_slli_epi64(t, 2), out), vbr);
    __m512i tie_side = _mm512_add_epi64(_mm512_and_si512(vb, set64(3)), _mm512_and_si512(s, set64(1)));
    __mmask8 closer_s = _mm512_cmple_epu64_mask(tie_side, set64(2));
    __mmask8 one_in = (__mmask8)(uin ^ win);
    __mmask8 take_s = (__mmask8)((one_in & uin) | (~one_in & closer_s));
    __m512i r_same = _mm512_mask_blend_epi64(take_s, t, s);
    return _mm512_mask_blend_epi64(shorter, r_same, r_short);
}

/* The 8 decimal digits of each lane's x < 10**8 as byte values 0..9, the first in the
 * lowest byte: split by 10**4 in 64-bit lanes, by 100 in 32-bit lanes, by 10 in 16-bit
 * lanes (se_sixteen_digits's ladder), each quotient to the lower half of its lane and the
 * remainder to the upper half. The 16-bit steps divide with a high multiply:
 * (v * 5243) >> 19 = v / 100 for v < 10**4, (v * 6554) >> 16 = v / 10 for v < 100. */
SE_TARGET static inline __m512i eight_digits8(__m512i x)
{
    __m512i q = _mm512_srli_epi64(_mm512_mul_epu32(x, set64(109951163)), 40);
    __m512i r = _mm512_sub_epi64(x, _mm512_mul_epu32(q, set64(10000)));
    __m512i v = _mm512_or_si512(q, _mm512_slli_epi64(r, 32));
    q = _mm512_srli_epi16(_mm512_mulhi_epu16(v, _mm512_set1_epi32(5243)), 3);
    r = _mm512_sub_epi16(v, _mm512_mullo_epi16(q, _mm512_set1_epi32(100)));
    v = _mm512_or_si512(q, _mm512_slli_epi32(r, 16));
    q = _mm512_mulhi_epu16(v, _mm512_set1_epi16(6554));
    r = _mm512_sub_epi16(v, _mm512_mullo_epi16(q, _mm512_set1_epi16(10)));
    return _mm512_or_si512(q, _mm512_slli_epi16(r, 8));
}

/* x / 10**8 and x mod 10**8 for x < 2**57. 10**8 = 2**8 * 390625, so the quotient is
 * floor((x >> 8) / 390625), and x >> 8 < 2**49 fits one IFMA operand: with
 * M = ceil(2**70 / 390625) < 2**52 and M * 390625 - 2**70 = 24701 <= 2**(70 - 49),
 * floor((x >> 8) * M / 2**70) is that quotient exactly (the multiply-high of IFMA gives
 * the product's bits from 52 up). */
SE_TARGET static inline __m512i divmod_1e8(__m512i x, __m512i *rem)
{
    const uint64_t m = 3022314549036573ULL;  /* ceil(2**70 / 390625) */
    __m512i q = _mm512_srli_epi64(
        _mm512_madd52hi_epu64(_mm512_setzero_si512(), _mm512_srli_epi64(x, 8), set64(m)), 18);
    *rem = _mm512_sub_epi64(x, _mm512_mul_epu32(q, set64(100000000)));  /* q < 2**31 */
    return q;
}

/* digits * 10**k -> se_put_layout's pieces for lanes [at, at + 8) of *out, as
 * se_put_f64_bits does after its conversion: a regular float64 gives 16 or 17 digits,
 * made 17 (s17), with e = k + 15 (+ 1 for 17). */
SE_TARGET static inline void write_out(__m512i digits, __m512i k, se_digits *out, int at)
{
    __mmask8 big = _mm512_cmpge_epu64_mask(digits, set64(10000000000000000ULL));
    __m512i times10 = _mm512_add_epi64(_mm512_slli_epi64(digits, 3), _mm512_slli_epi64(digits, 1));
    __m512i s17 = _mm512_mask_blend_epi64(big, times10, digits);
    __m512i e = _mm512_mask_add_epi64(_mm512_add_epi64(k, set64(15)), big,
                                      _mm512_add_epi64(k, set64(15)), set64(1));
    __m512i lo8;
    __m512i hi9 = divmod_1e8(s17, &lo8);
    /* hi9 < 10**9: (hi9 * ceil(2**57 / 10**8)) >> 57 = hi9 / 10**8 below 6 * 10**9 */
    __m512i first = _mm512_srli_epi64(_mm512_mul_epu32(hi9, set64(1441151881)), 57);
    __m512i mid8 = _mm512_sub_epi64(hi9, _mm512_mul_epu32(first, set64(100000000)));
    __m512i m = eight_digits8(mid8), l = eight_digits8(lo8);
    /* significant digits among the sixteen: from the last non-zero byte */
    __m512i more_l = _mm512_sub_epi64(set64(16), _mm512_srli_epi64(_mm512_lzcnt_epi64(l), 3));
    __m512i more_m = _mm512_sub_epi64(set64(8), _mm512_srli_epi64(_mm512_lzcnt_epi64(m), 3));
    __mmask8 l_zero = _mm512_testn_epi64_mask(l, l);
    const __m512i ascii = set64(0x3030303030303030ULL);
    _mm512_storeu_si512(out->first + at, first);
    _mm512_storeu_si512(out->wm + at, _mm512_add_epi64(m, ascii));
    _mm512_storeu_si512(out->wl + at, _mm512_add_epi64(l, ascii));
    _mm512_storeu_si512(out->more + at, _mm512_mask_blend_epi64(l_zero, more_l, more_m));
    _mm512_storeu_si512(out->e + at, e);
}

/* The kernels below take `blocks` groups of eight lanes, each step done for every group
 * before the next step: one group is a chain of some 250 cycles of latency (two gathers,
 * the products, the choice, the digits), and groups side by side let the CPU overlap
 * their chains. `blocks` is a constant at each call (SE_ALWAYS_INLINE), so the group
 * arrays live in registers. */
#define SE_ALWAYS_INLINE __attribute__((always_inline))
#define EACH(b) for (int b = 0; b < blocks; b++)
#define MAX_BLOCKS (SE_SIMD_WIDTH / 8)

SE_TARGET static inline SE_ALWAYS_INLINE uint32_t f64_kernel(const unsigned char *bits,
                                                             se_digits *out, const int blocks)
{
    __m512i t[MAX_BLOCKS], k_index[MAX_BLOCKS], h[MAX_BLOCKS], vb[MAX_BLOCKS][3];
    g_limbs g[MAX_BLOCKS];
    __mmask8 regular[MAX_BLOCKS];
    uint32_t any = 0, negative = 0;
    EACH(b) {
        __m512i x = _mm512_loadu_si512((const void *)(bits + 64 * b));
        __m512i e = _mm512_and_si512(_mm512_srli_epi64(x, 52), set64(0x7ff));
        t[b] = _mm512_and_si512(x, set64((1ULL << 52) - 1));
        negative |= (uint32_t)_mm512_movepi64_mask(x) << (8 * b);
        regular[b] = _mm512_test_epi64_mask(t[b], t[b]) & _mm512_test_epi64_mask(e, e) &
                     _mm512_cmpneq_epu64_mask(e, set64(0x7ff));
        any |= (uint32_t)regular[b] << (8 * b);
        gather_kh(e, se_f64_kh, &k_index[b], &h[b]);
    }
    if (!any)
        return 0;
    out->negative = negative;
    EACH(b) g[b] = gather_g(k_index[b], regular[b]);
    EACH(b) {
        /* W = c * g = t * g + g * 2**52 (t < 2**52); Z = 2W + d * g, d = 0, -1, 1 */
        const __m512i zero = _mm512_setzero_si512();
        __m512i w[4];
        w[0] = _mm512_madd52lo_epu64(zero, t[b], g[b].l[0]);
        w[1] = _mm512_madd52lo_epu64(_mm512_madd52hi_epu64(g[b].l[0], t[b], g[b].l[0]), t[b], g[b].l[1]);
        w[2] = _mm512_madd52lo_epu64(_mm512_madd52hi_epu64(g[b].l[1], t[b], g[b].l[1]), t[b], g[b].l[2]);
        w[3] = _mm512_madd52hi_epu64(g[b].l[2], t[b], g[b].l[2]);
        __m512i z[4], zl[4], zr[4];
        for (int i = 0; i < 4; i++) {
            z[i] = _mm512_slli_epi64(w[i], 1);
            zl[i] = i < 3 ? _mm512_sub_epi64(z[i], g[b].l[i]) : z[i];
            zr[i] = i < 3 ? _mm512_add_epi64(z[i], g[b].l[i]) : z[i];
        }
        carry52(z, 4);
        carry52(zl, 4);
        carry52(zr, 4);
        /* r from bits [63 - h, 126 - h): limb 1 from bit 11 - h, limb 2 below 22 - h; the
         * value from bit 22 - h of limb 2 */
        __m512i sh = _mm512_sub_epi64(set64(22), h[b]);
        __m512i from = _mm512_sub_epi64(set64(11), h[b]);
        vb[b][0] = round_to_odd(z, 1, sh, from);
        vb[b][1] = round_to_odd(zl, 1, sh, from);
        vb[b][2] = round_to_odd(zr, 1, sh, from);
    }
    EACH(b) {
        __m512i digits = choose8(vb[b][0], vb[b][1], vb[b][2], _mm512_and_si512(t[b], set64(1)));
        write_out(digits, _mm512_add_epi64(k_index[b], set64((uint64_t)(int64_t)SE_G64_K_MIN)),
                  out, 8 * b);
    }
    return any;
}

SE_TARGET static inline SE_ALWAYS_INLINE uint32_t f32_exact_kernel(const unsigned char *bits,
                                                                   se_digits *out,
                                                                   const int blocks)
{
    __m512i m[MAX_BLOCKS], k_index[MAX_BLOCKS], h[MAX_BLOCKS], vb[MAX_BLOCKS][3];
    g_limbs g[MAX_BLOCKS];
    __mmask8 regular[MAX_BLOCKS];
    uint32_t any = 0, negative = 0;
    EACH(b) {
        __m512i x = _mm512_cvtepu32_epi64(_mm256_loadu_si256((const void *)(bits + 32 * b)));
        __m512i e = _mm512_and_si512(_mm512_srli_epi64(x, 23), set64(0xff));
        __m512i t = _mm512_and_si512(x, set64((1u << 23) - 1));
        negative |= (uint32_t)_mm512_test_epi64_mask(x, set64(1u << 31)) << (8 * b);
        regular[b] = _mm512_test_epi64_mask(t, t) & _mm512_test_epi64_mask(e, e) &
                     _mm512_cmpneq_epu64_mask(e, set64(0xff));
        any |= (uint32_t)regular[b] << (8 * b);
        m[b] = _mm512_or_si512(t, set64(1u << 23));
        gather_kh(e, se_f32_exact_kh, &k_index[b], &h[b]);
    }
    if (!any)
        return 0;
    out->negative = negative;
    EACH(b) g[b] = gather_g(k_index[b], regular[b]);
    EACH(b) {
        /* W = m * g (m < 2**24, so the top limb's product has no high part), then
         * m * g + floor(-/+ g / 2**30) */
        const __m512i zero = _mm512_setzero_si512();
        __m512i w[3], wl[3], wr[3];
        w[0] = _mm512_madd52lo_epu64(zero, m[b], g[b].l[0]);
        w[1] = _mm512_madd52lo_epu64(_mm512_madd52hi_epu64(zero, m[b], g[b].l[0]), m[b], g[b].l[1]);
        w[2] = _mm512_madd52lo_epu64(_mm512_madd52hi_epu64(zero, m[b], g[b].l[1]), m[b], g[b].l[2]);
        /* g >> 30 in 52-bit limbs, and 1 where g's low 30 bits are not 0 (the floor of
         * -g / 2**30 is one lower) */
        __m512i gq0 = _mm512_and_si512(_mm512_or_si512(_mm512_srli_epi64(g[b].lo64, 30),
                                                       _mm512_slli_epi64(g[b].hi64, 34)),
                                       set64(LIMB52));
        __m512i gq1 = _mm512_srli_epi64(g[b].hi64, 18);
        __m512i g_rem = _mm512_and_si512(g[b].lo64, set64((1u << 30) - 1));
        __m512i borrow = _mm512_maskz_mov_epi64(_mm512_test_epi64_mask(g_rem, g_rem), set64(1));
        wl[0] = _mm512_sub_epi64(_mm512_sub_epi64(w[0], gq0), borrow);
        wl[1] = _mm512_sub_epi64(w[1], gq1);
        wl[2] = w[2];
        wr[0] = _mm512_add_epi64(w[0], gq0);
        wr[1] = _mm512_add_epi64(w[1], gq1);
        wr[2] = w[2];
        carry52(w, 3);
        carry52(wl, 3);
        carry52(wr, 3);
        /* r from bits [33 - h, 96 - h) of W: limb 0 from bit 33 - h, limb 1 below 44 - h;
         * the value from bit 44 - h of limb 1 */
        __m512i sh = _mm512_sub_epi64(set64(44), h[b]);
        __m512i from = _mm512_sub_epi64(set64(33), h[b]);
        vb[b][0] = round_to_odd(w, 0, sh, from);
        vb[b][1] = round_to_odd(wl, 0, sh, from);
        vb[b][2] = round_to_odd(wr, 0, sh, from);
    }
    EACH(b) {
        /* c = m << 29 is even: the interval's ends are included (out = 0) */
        __m512i digits = choose8(vb[b][0], vb[b][1], vb[b][2], _mm512_setzero_si512());
        write_out(digits, _mm512_add_epi64(k_index[b], set64((uint64_t)(int64_t)SE_G64_K_MIN)),
                  out, 8 * b);
    }
    return any;
}

/* float32 shortest: se_schubfach.h's convert32_at, whose products are g (64 bits) times
 * cp = (4m + d) << h, d in {-2, 0, 2}, h in 33..36: with Q = (4m + d) * g = b * 2**32 + a
 * (a < 2**32; two 32-bit products), r = floor(Q / 2**(95 - h)) = b >> (63 - h), made odd
 * when bits [64 - h, 95 - h) of Q are not all zero. The digits (at most nine) are laid out
 * as se_put_decimal9 does. Values in [1e10, 1e16), where the exact token can be shorter
 * (se_shorter_of_exact_f32), are left to the scalar path. */
SE_TARGET static inline __m512i round_to_odd_q(__m512i x, __m512i g_lo, __m512i g_hi,
                                               __m512i h)
{
    __m512i a = _mm512_mul_epu32(x, g_lo);
    __m512i b = _mm512_add_epi64(_mm512_mul_epu32(x, g_hi), hi32(a));
    __m512i r = _mm512_srlv_epi64(b, _mm512_sub_epi64(set64(63), h));
    __m512i sticky = _mm512_or_si512(_mm512_srlv_epi64(lo32(a), _mm512_sub_epi64(set64(64), h)),
                                     _mm512_and_si512(b, low_mask(_mm512_sub_epi64(set64(63), h))));
    __mmask8 odd = _mm512_test_epi64_mask(sticky, sticky);
    return _mm512_mask_or_epi64(r, odd, r, set64(1));
}

/* 10**i for lane values i in 0..15. */
SE_TARGET static inline __m512i pow10_of(__m512i i)
{
    const __m512i low = _mm512_set_epi64(10000000, 1000000, 100000, 10000, 1000, 100, 10, 1);
    const __m512i high = _mm512_set_epi64(1000000000000000LL, 100000000000000LL,
                                          10000000000000LL, 1000000000000LL, 100000000000LL,
                                          10000000000LL, 1000000000LL, 100000000LL);
    return _mm512_permutex2var_epi64(low, i, high);
}

/* digits * 10**k (1 <= digits < 10**9) -> se_put_layout's pieces for lanes [at, at + 8). */
SE_TARGET static inline void write_out9(__m512i digits, __m512i k, se_digits *out, int at)
{
    /* n digits: from the bit length (se_digit_count's estimate), corrected by one compare */
    __m512i bits = _mm512_sub_epi64(set64(64), _mm512_lzcnt_epi64(digits));
    __m512i n = _mm512_srli_epi64(_mm512_mul_epu32(bits, set64(1233)), 12);
    n = _mm512_mask_add_epi64(n, _mm512_cmpge_epu64_mask(digits, pow10_of(n)), n, set64(1));
    __m512i s9 = _mm512_mul_epu32(digits, pow10_of(_mm512_sub_epi64(set64(9), n)));
    __m512i first = _mm512_srli_epi64(_mm512_mul_epu32(s9, set64(1441151881)), 57);
    __m512i m = eight_digits8(_mm512_sub_epi64(s9, _mm512_mul_epu32(first, set64(100000000))));
    const __m512i ascii = set64(0x3030303030303030ULL);
    _mm512_storeu_si512(out->first + at, first);
    _mm512_storeu_si512(out->wm + at, _mm512_add_epi64(m, ascii));
    _mm512_storeu_si512(out->wl + at, ascii);
    _mm512_storeu_si512(out->more + at,
                        _mm512_sub_epi64(set64(8), _mm512_srli_epi64(_mm512_lzcnt_epi64(m), 3)));
    _mm512_storeu_si512(out->e + at, _mm512_add_epi64(k, _mm512_sub_epi64(n, set64(1))));
}

SE_TARGET static inline SE_ALWAYS_INLINE uint32_t f32_shortest_kernel(const unsigned char *bits,
                                                                      se_digits *out,
                                                                      const int blocks)
{
    __m512i m[MAX_BLOCKS], k_index[MAX_BLOCKS], h[MAX_BLOCKS], g[MAX_BLOCKS];
    __mmask8 regular[MAX_BLOCKS];
    uint32_t any = 0, negative = 0;
    const float padded_from = 1e10f, padded_to = 1e16f;  /* se_put_f32_shortest_bits */
    uint32_t from_bits, to_bits;
    memcpy(&from_bits, &padded_from, 4);
    memcpy(&to_bits, &padded_to, 4);
    EACH(b) {
        __m512i x = _mm512_cvtepu32_epi64(_mm256_loadu_si256((const void *)(bits + 32 * b)));
        __m512i e = _mm512_and_si512(_mm512_srli_epi64(x, 23), set64(0xff));
        __m512i t = _mm512_and_si512(x, set64((1u << 23) - 1));
        negative |= (uint32_t)_mm512_test_epi64_mask(x, set64(1u << 31)) << (8 * b);
        __m512i magnitude = _mm512_and_si512(x, set64(0x7fffffff));
        __mmask8 padded = _mm512_cmpge_epu64_mask(magnitude, set64(from_bits)) &
                          _mm512_cmplt_epu64_mask(magnitude, set64(to_bits));
        regular[b] = _mm512_test_epi64_mask(t, t) & _mm512_test_epi64_mask(e, e) &
                     _mm512_cmpneq_epu64_mask(e, set64(0xff)) & (__mmask8)~padded;
        any |= (uint32_t)regular[b] << (8 * b);
        m[b] = _mm512_or_si512(t, set64(1u << 23));
        gather_kh(e, se_f32_shortest_kh, &k_index[b], &h[b]);
    }
    if (!any)
        return 0;
    out->negative = negative;
    EACH(b) g[b] = _mm512_mask_i64gather_epi64(_mm512_setzero_si512(), regular[b], k_index[b],
                                               se_g32, 8);
    EACH(b) {
        __m512i g_lo = lo32(g[b]), g_hi = hi32(g[b]);
        __m512i cb = _mm512_slli_epi64(m[b], 2);
        __m512i vb = round_to_odd_q(cb, g_lo, g_hi, h[b]);
        __m512i vbl = round_to_odd_q(_mm512_sub_epi64(cb, set64(2)), g_lo, g_hi, h[b]);
        __m512i vbr = round_to_odd_q(_mm512_add_epi64(cb, set64(2)), g_lo, g_hi, h[b]);
        __m512i digits = choose8(vb, vbl, vbr, _mm512_and_si512(m[b], set64(1)));
        write_out9(digits, _mm512_add_epi64(k_index[b], set64((uint64_t)(int64_t)SE_G32_K_MIN)),
                   out, 8 * b);
    }
    return any;
}

SE_TARGET uint32_t se_simd_f32_shortest_digits(const unsigned char *bits, int blocks,
                                               se_digits *out)
{
    return blocks == MAX_BLOCKS ? f32_shortest_kernel(bits, out, MAX_BLOCKS)
                                : f32_shortest_kernel(bits, out, 1);
}

SE_TARGET uint32_t se_simd_f64_digits(const unsigned char *bits, int blocks, se_digits *out)
{
    return blocks == MAX_BLOCKS ? f64_kernel(bits, out, MAX_BLOCKS) : f64_kernel(bits, out, 1);
}

SE_TARGET uint32_t se_simd_f32_exact_digits(const unsigned char *bits, int blocks, se_digits *out)
{
    return blocks == MAX_BLOCKS ? f32_exact_kernel(bits, out, MAX_BLOCKS)
                                : f32_exact_kernel(bits, out, 1);
}

/* se_simd_layout8: the eight tokens are built two at a time in a 64-byte vector, token s
 * of the pair in bytes [32 s, 32 s + 24) in a canonical form that holds every token of
 * fixed notation below 1,
 *
 *     "-0.000" d dddddddd dddddddd ","    (sign, "0.", three zeros, 1 + 16 digits, ",")
 *
 * whose unwanted bytes (the sign of a positive value, the zeros that e = -4..-1 does not
 * need, the digits past the significant ones) one byte compress then squeezes out. The
 * digits come from the lanes of wm and wl by a two-source byte permute; the other bytes
 * from a "header" word per lane by a one-source permute. */
#define SE_TARGET_LAYOUT \
    __attribute__((target("avx512f,avx512dq,avx512bw,avx512cd,avx512ifma,avx512vbmi,avx512vbmi2,popcnt")))

static int layout_supported(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512vbmi2") &&
           __builtin_cpu_supports("popcnt");
}

static int layout_cpu = -1;  /* -1: not asked yet */

int se_simd_layout_enabled(void)
{
    if (layout_cpu < 0)
        layout_cpu = layout_supported();
    return layout_cpu && se_simd_enabled();
}

/* Byte sources of the first pair (lanes 0 and 1; lanes 2i, 2i + 1 add 16 i): lane j's
 * wm bytes are 8 j .. 8 j + 7 of the first permute source, its wl bytes 64 + 8 j .. of the
 * second; its header bytes ("-", "0", ".", "0", first digit, ",") 8 j .. 8 j + 5. */
#define EIGHT_FROM(x) (x), (x) + 1, (x) + 2, (x) + 3, (x) + 4, (x) + 5, (x) + 6, (x) + 7
#define DIGIT_SLOT(j) 0, 0, 0, 0, 0, 0, 0, EIGHT_FROM(8 * (j)), EIGHT_FROM(64 + 8 * (j)), \
                      0, 0, 0, 0, 0, 0, 0, 0, 0
#define HEADER_SLOT(j) 8 * (j), 8 * (j) + 1, 8 * (j) + 2, 8 * (j) + 3, 8 * (j) + 3,       \
                       8 * (j) + 3, 8 * (j) + 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, \
                       0, 0, 8 * (j) + 5, 0, 0, 0, 0, 0, 0, 0, 0
static const uint8_t digit_source[64] __attribute__((aligned(64))) = {DIGIT_SLOT(0),
                                                                      DIGIT_SLOT(1)};
static const uint8_t header_source[64] __attribute__((aligned(64))) = {HEADER_SLOT(0),
                                                                       HEADER_SLOT(1)};
#define HEADER_BYTES 0x0080007F0080007FULL /* bytes 0..6 and 23 of each slot */
#define HEADER_WORD 0x00002C30302E302DULL  /* "-0.0" "0" "," in bytes 0..5 */

SE_TARGET_LAYOUT char *se_simd_layout8(const se_digits *d, int at, char *p)
{
    __m512i e = _mm512_loadu_si512(d->e + at);
    if (_mm512_cmplt_epu64_mask(_mm512_add_epi64(e, set64(4)), set64(4)) != 0xff)
        return NULL;
    /* each lane's bytes to keep, as a 32-bit mask over its slot: the sign when negative,
     * "0.", -e - 1 of the three zeros, the first digit, `more` digits, the "," */
    __m512i zeros = _mm512_sub_epi64(set64((uint64_t)-1), e);
    __m512i more = _mm512_loadu_si512(d->more + at);
    __m512i keep = _mm512_or_si512(
        _mm512_or_si512(_mm512_slli_epi64(low_mask(zeros), 3), _mm512_slli_epi64(low_mask(more), 7)),
        _mm512_mask_blend_epi64((__mmask8)(d->negative >> at), set64(0x800046), set64(0x800047)));
    /* lanes 2i and 2i + 1 as one 64-bit mask, the first in the low half */
    uint64_t pair_keep[4];
    _mm256_storeu_si256((__m256i *)(void *)pair_keep, _mm512_cvtepi64_epi32(keep));
    __m512i first = _mm512_loadu_si512(d->first + at);
    __m512i header = _mm512_add_epi64(set64(HEADER_WORD), _mm512_slli_epi64(first, 32));
    __m512i wm = _mm512_loadu_si512(d->wm + at), wl = _mm512_loadu_si512(d->wl + at);
    const __m512i digits_at = _mm512_load_si512((const void *)digit_source);
    const __m512i header_at = _mm512_load_si512((const void *)header_source);
    for (int i = 0; i < 4; i++) {
        __m512i shift = _mm512_set1_epi8((char)(16 * i));
        __m512i v = _mm512_permutex2var_epi8(wm, _mm512_add_epi8(digits_at, shift), wl);
        v = _mm512_mask_permutexvar_epi8(v, HEADER_BYTES, _mm512_add_epi8(header_at, shift),
                                         header);
        _mm512_storeu_si512((void *)p, _mm512_maskz_compress_epi8(pair_keep[i], v));
        p += _mm_popcnt_u64(pair_keep[i]);
    }
    return p;
}

#else /* no AVX-512 path compiled */

int se_simd_layout_enabled(void) { return 0; }

char *se_simd_layout8(const se_digits *d, int at, char *p)
{
    (void)d;
    (void)at;
    (void)p;
    return NULL;
}

int se_simd_enabled(void) { return 0; }
int se_simd_avx2_enabled(void) { return 0; }
int se_simd_set_enabled(int on) { (void)on; return 0; }
int se_simd_set_avx512(int on) { (void)on; return 0; }

uint32_t se_simd_f64_digits(const unsigned char *bits, int blocks, se_digits *out)
{
    (void)bits;
    (void)blocks;
    (void)out;
    return 0;
}

uint32_t se_simd_f32_exact_digits(const unsigned char *bits, int blocks, se_digits *out)
{
    (void)bits;
    (void)blocks;
    (void)out;
    return 0;
}

uint32_t se_simd_f32_shortest_digits(const unsigned char *bits, int blocks, se_digits *out)
{
    (void)bits;
    (void)blocks;
    (void)out;
    return 0;
}
#endif
