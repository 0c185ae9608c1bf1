/* Eight floats' decimal digits at once, with AVX-512 (F, DQ, BW, CD and IFMA: Ice Lake,
 * Sapphire Rapids, Zen 4 and later) where the CPU has it, else with AVX2 alone
 * (se_simd_avx2.c, four lanes at a time: Zen 2 and 3, Intel Haswell to Cascade Lake).
 *
 * The run writers (se_runs.c) format floats one at a time: a Schubfach conversion and
 * its digit writing are ~200 instructions per element, a long chain that the CPU can
 * hardly overlap. Here the same arithmetic runs on eight elements in the lanes of one
 * vector (products in 32-bit limbs, divisions by constants as multiplies), and the run
 * writer only lays out the digits it gets back (se_put_layout). float32 in both modes and
 * float64 have a vector path. Lanes whose element is
 * not a "regular" float -- zero, a power of two, subnormal, NaN or infinity -- are left
 * to the scalar path, which knows those cases.
 *
 * The results are exactly those of the scalar path (se_write.h) for every regular
 * element: tests compare both on every float32 pattern and on random float64 ones.
 */
#ifndef SE_SIMD_H
#define SE_SIMD_H

#include <stdint.h>

/* x86-64 with GCC or Clang: functions can be compiled for AVX2 and AVX-512 and chosen at
 * run time. SE_NO_SIMD turns every vector path off at build time. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(SE_NO_SIMD)
#define SE_HAVE_X86_TARGETS 1
#else
#define SE_HAVE_X86_TARGETS 0
#endif

/* Elements per call at most: four groups of eight, whose chains the CPU overlaps. */
#define SE_SIMD_WIDTH 32

/* The digits of up to SE_SIMD_WIDTH elements, as se_put_layout takes them: the first digit, the next
 * sixteen as two words of ASCII digits (lowest byte first), how many of those sixteen
 * are significant, and the decimal exponent e of d.ddd x 10**e. */
typedef struct {
    uint64_t first[SE_SIMD_WIDTH];
    uint64_t wm[SE_SIMD_WIDTH];
    uint64_t wl[SE_SIMD_WIDTH];
    int64_t more[SE_SIMD_WIDTH];
    int64_t e[SE_SIMD_WIDTH];
    uint32_t negative; /* bit j: element j is negative (set by the AVX-512 kernels) */
} se_digits;

/* 1 when the vector path may be used: compiled in, supported by this CPU, and not
 * turned off by se_simd_set_enabled(0). */
int se_simd_enabled(void);

/* 1 when AVX2 may be used (the small dtypes' table copy, se_runs.c): supported by this CPU
 * and not turned off by se_simd_set_enabled(0). */
int se_simd_avx2_enabled(void);

/* Turns the vector paths off (0) or back on where supported; returns the previous state of
 * se_simd_enabled(). For tests (both paths on one machine) and for users who want the
 * scalar path. */
int se_simd_set_enabled(int enabled);

/* Turns the AVX-512 paths alone off (0) or back on where supported, leaving AVX2's, as on
 * a CPU without AVX-512; returns the previous state of se_simd_enabled(). For tests. */
int se_simd_set_avx512(int enabled);

/* The digits of 8 * blocks elements at `bits` (blocks: 1 or SE_SIMD_WIDTH / 8) as float64
 * (repr), or as float32 widened to float64 (exact mode). Returns the mask of lanes
 * filled: bit j set when element j is regular (normal, fraction not zero); the other
 * lanes of *out are unspecified. Only call when se_simd_enabled(). */
uint32_t se_simd_f64_digits(const unsigned char *bits, int blocks, se_digits *out);
uint32_t se_simd_f32_exact_digits(const unsigned char *bits, int blocks, se_digits *out);

/* se_simd_f32_exact_digits, se_simd_f32_shortest_digits and se_simd_f64_digits with AVX2 alone
 * (se_simd_avx2.c), four lanes at a time: for CPUs without AVX-512 IFMA. Only call when
 * se_simd_avx2_enabled(). */
uint32_t se_simd_avx2_f32_exact_digits(const unsigned char *bits, int blocks, se_digits *out);
uint32_t se_simd_avx2_f32_shortest_digits(const unsigned char *bits, int blocks, se_digits *out);
uint32_t se_simd_avx2_f64_digits(const unsigned char *bits, int blocks, se_digits *out);

/* The same for float32 shortest mode (the fewest digits that read back as the float32).
 * Elements in [1e10, 1e16), whose exact token can be shorter, are left out (not regular). */
uint32_t se_simd_f32_shortest_digits(const unsigned char *bits, int blocks, se_digits *out);

/* 1 when se_simd_layout8 may be used: se_simd_enabled() and the CPU has AVX-512 VBMI and
 * VBMI2 (byte permutes and byte compress: Ice Lake, Sapphire Rapids, Zen 4 and later). */
int se_simd_layout_enabled(void);

/* Lays out lanes [at, at + 8) of *d (from an AVX-512 kernel, every one of the eight lanes
 * regular) at p as se_put_layout does, each token with its sign and a "," after it, when
 * all eight lie in fixed notation below 1 (e in -4..-1: 0.0001 <= |x| < 1, the bulk of
 * neural-network weights); returns the end, or NULL (nothing written) when one does not,
 * for the caller to lay them out one by one. Stores up to 64 bytes past the end. Only call
 * when se_simd_layout_enabled(). */
char *se_simd_layout8(const se_digits *d, int at, char *p);

#endif /* SE_SIMD_H */
