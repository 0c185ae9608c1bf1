/* Run writers, one per dtype: see se_runs.h. */
#include "se_runs.h"

#include <string.h>

#include "se_number.h"
#include "se_simd.h"
#include "se_write.h"

/* The token of a NaN (kind 0), +inf (1) or -inf (2) under a policy; 0 for "error". */
static inline size_t put_nonfinite(char *p, int kind, se_nonfinite policy)
{
    static const char *const tokens[4][3] = {
        {NULL, NULL, NULL},
        {"null", "null", "null"},
        {"\"NaN\"", "\"Infinity\"", "\"-Infinity\""},
        {"NaN", "Infinity", "-Infinity"},
    };
    const char *token = tokens[policy][kind];
    if (token == NULL)
        return 0;
    size_t n = strlen(token);
    memcpy(p, token, n);
    return n;
}

#define INTEGER_WRITER(NAME, TYPE)                                                      \
    static inline size_t NAME(char *p, const unsigned char *src, const se_run_options *o) \
    {                                                                                    \
        TYPE v;                                                                          \
        memcpy(&v, src, sizeof v);                                                       \
        return se_write_i64(p, (int64_t)v);                                              \
    }
INTEGER_WRITER(put_i8, int8_t)
INTEGER_WRITER(put_i16, int16_t)
INTEGER_WRITER(put_i32, int32_t)
INTEGER_WRITER(put_i64, int64_t)
INTEGER_WRITER(put_u8, uint8_t)
INTEGER_WRITER(put_u16, uint16_t)
INTEGER_WRITER(put_u32, uint32_t)

static inline size_t put_u64(char *p, const unsigned char *src, const se_run_options *o)
{
    uint64_t v;
    memcpy(&v, src, sizeof v);
    return se_write_u64(p, v);
}

static inline size_t put_bool(char *p, const unsigned char *src, const se_run_options *o)
{
    if (*src) {
        memcpy(p, "true", 4);
        return 4;
    }
    memcpy(p, "false", 5);
    return 5;
}

/* The loop, instantiated per element writer so each inlines its own. Each token is
 * followed by a ",", the last one taken back (writers may store past their token). */
#define RUN_WRITER(NAME, SIZE, PUT)                                                      \
    static se_status NAME(const unsigned char *src, int64_t n, char **out,               \
                          const se_run_options *o, int64_t *bad)                         \
    {                                                                                    \
        char *p = *out;                                                                  \
        for (int64_t i = 0; i < n; i++, src += (SIZE)) {                                 \
            size_t len = PUT(p, src, o);                                                 \
            if (se_unlikely(len == 0)) {                                                 \
                *bad = i;                                                                \
                *out = p;                                                                \
                return SE_ERR_NONFINITE;                                                 \
            }                                                                            \
            p[len] = ',';                                                                \
            p += len + 1;                                                                \
        }                                                                                \
        *out = p - (n > 0);                                                              \
        return SE_OK;                                                                    \
    }
RUN_WRITER(run_i8, 1, put_i8)
RUN_WRITER(run_i16, 2, put_i16)
RUN_WRITER(run_i32, 4, put_i32)
RUN_WRITER(run_i64, 8, put_i64)
RUN_WRITER(run_u8, 1, put_u8)
RUN_WRITER(run_u16, 2, put_u16)
RUN_WRITER(run_u32, 4, put_u32)
RUN_WRITER(run_u64, 8, put_u64)
RUN_WRITER(run_bool, 1, put_bool)

/* The float dtypes: the bits are classified here, so that the finite path is the
 * writer's pointer arithmetic alone (no length to test). A non-finite element takes its
 * policy's token, or stops the run. */
#define FLOAT_RUN_WRITER(NAME, TYPE, EXP_MASK, SIGN_SHIFT, PUT_BITS)                      \
    static se_status NAME(const unsigned char *src, int64_t n, char **out,               \
                          const se_run_options *o, int64_t *bad)                         \
    {                                                                                    \
        char *p = *out;                                                                  \
        for (int64_t i = 0; i < n; i++, src += sizeof(TYPE)) {                           \
            TYPE bits;                                                                   \
            memcpy(&bits, src, sizeof bits);                                             \
            if (se_likely((bits & (EXP_MASK)) != (EXP_MASK))) {                          \
                p = PUT_BITS(p, bits);                                                   \
            } else {                                                                     \
                TYPE fraction = bits & ~(EXP_MASK) & ~((TYPE)1 << (SIGN_SHIFT));          \
                int kind = fraction ? 0 : 1 + (int)(bits >> (SIGN_SHIFT));               \
                size_t len = put_nonfinite(p, kind, o->nonfinite);                       \
                if (len == 0) {                                                          \
                    *bad = i;                                                            \
                    *out = p;                                                            \
                    return SE_ERR_NONFINITE;                                             \
                }                                                                        \
                p += len;                                                                \
            }                                                                            \
            *p++ = ',';                                                                  \
        }                                                                                \
        *out = p - (n > 0);                                                              \
        return SE_OK;                                                                    \
    }
FLOAT_RUN_WRITER(run_f64, uint64_t, 0x7ff0000000000000ULL, 63, se_put_f64_bits)
FLOAT_RUN_WRITER(run_f32_exact, uint32_t, 0x7f800000u, 31, se_put_f32_exact_bits)
FLOAT_RUN_WRITER(run_f32_shortest, uint32_t, 0x7f800000u, 31, se_put_f32_shortest_bits)

/* The same runs with the digits from se_simd.c: SE_SIMD_WIDTH elements at a time while
 * that many remain, then groups of eight. Each group's regular elements are only laid
 * out here; the others (zeros, powers of two, subnormals, NaN and infinities) go through
 * the one-element run above, and so does the last partial group. With LAYOUT (the
 * AVX-512 kernels), a group of eight regular elements below one in magnitude is laid out
 * by se_simd_layout8 in one go, where the CPU has its byte instructions. */
#define FLOAT_RUN_WRITER_SIMD(NAME, TYPE, SIGN_SHIFT, DIGITS, SCALAR_RUN, LAYOUT)        \
    static se_status NAME(const unsigned char *src, int64_t n, char **out,               \
                          const se_run_options *o, int64_t *bad)                         \
    {                                                                                    \
        /* p's address is never taken (q stands in for the scalar calls), so that it    \
         * stays in a register through the loop */                                      \
        char *p = *out, *q;                                                              \
        int64_t i = 0, b = 0;                                                            \
        se_status st;                                                                    \
        se_digits d;                                                                     \
        const int layout = (LAYOUT) && se_simd_layout_enabled();                          \
        while (n - i >= 8) {                                                             \
            int width = n - i >= SE_SIMD_WIDTH ? SE_SIMD_WIDTH : 8;                      \
            uint32_t regular = DIGITS(src, width / 8, &d);                               \
            for (int j = 0; j < width; j++) {                                            \
                TYPE bits;                                                               \
                if (j % 8 == 0 && layout && (regular >> j & 0xff) == 0xff) {             \
                    char *end = se_simd_layout8(&d, j, p);                               \
                    if (end != NULL) {                                                   \
                        p = end;                                                         \
                        j += 7;                                                          \
                        continue;                                                        \
                    }                                                                    \
                }                                                                        \
                memcpy(&bits, src + j * sizeof(TYPE), sizeof bits);                      \
                if (se_likely(regular >> j & 1)) {                                       \
                    *p = '-';                                                            \
                    p += bits >> (SIGN_SHIFT);                                           \
                    p = se_put_layout(p, (uint32_t)d.first[j], d.wm[j], d.wl[j],         \
                                      (int)d.more[j], (int)d.e[j]);                      \
                } else {                                                                 \
                    q = p;                                                               \
                    if ((st = SCALAR_RUN(src + j * sizeof(TYPE), 1, &q, o, &b))) {       \
                        *bad = i + j;                                                    \
                        *out = q;                                                        \
                        return st;                                                       \
                    }                                                                    \
                    p = q;                                                               \
                }                                                                        \
                *p++ = ',';                                                              \
            }                                                                            \
            src += width * sizeof(TYPE);                                                 \
            i += width;                                                                  \
        }                                                                                \
        if (i < n) {                                                                     \
            q = p;                                                                       \
            if ((st = SCALAR_RUN(src, n - i, &q, o, &b))) {                              \
                *bad = i + b;                                                            \
                *out = q;                                                                \
                return st;                                                               \
            }                                                                            \
            p = q;                                                                       \
        } else {                                                                         \
            p -= n > 0;                                                                  \
        }                                                                                \
        *out = p;                                                                        \
        return SE_OK;                                                                    \
    }
FLOAT_RUN_WRITER_SIMD(run_f64_simd, uint64_t, 63, se_simd_f64_digits, run_f64, 1)
FLOAT_RUN_WRITER_SIMD(run_f32_exact_simd, uint32_t, 31, se_simd_f32_exact_digits, run_f32_exact,
                      1)
FLOAT_RUN_WRITER_SIMD(run_f64_avx2, uint64_t, 63, se_simd_avx2_f64_digits, run_f64, 0)
FLOAT_RUN_WRITER_SIMD(run_f32_exact_avx2, uint32_t, 31, se_simd_avx2_f32_exact_digits,
                      run_f32_exact, 0)
FLOAT_RUN_WRITER_SIMD(run_f32_shortest_avx2, uint32_t, 31, se_simd_avx2_f32_shortest_digits,
                      run_f32_shortest, 0)
FLOAT_RUN_WRITER_SIMD(run_f32_shortest_simd, uint32_t, 31, se_simd_f32_shortest_digits,
                      run_f32_shortest, 1)

/* The small float dtypes, by table. A slot holds the token and its "," (se_lut.h); the
 * first 24 bytes of a slot cover every finite token of these formats with its ","
 * (the longest, "-1.1754943508222875e-38", has 23), copied as a 16- and an 8-byte store,
 * or, where the CPU has AVX2, as the whole 32-byte slot in one store: one store per
 * element instead of two makes the loop ~8% faster (the length byte and the padding
 * it also writes lie past the ",", where the next token goes). */
static inline void copy_slot24(char *p, const se_lut_slot *slot)
{
    memcpy(p, slot->text, 16);
    memcpy(p + 16, slot->text + 16, 8);
}

#define LUT_RUN_WRITER(NAME, SIZE, LOAD, COPY, ATTRIBUTES)                               \
    ATTRIBUTES static se_status NAME(const unsigned char *src, int64_t n, char **out,    \
                                     const se_run_options *o, int64_t *bad)              \
    {                                                                                    \
        char *p = *out;                                                                  \
        const se_lut_slot *lut = o->lut;                                                 \
        for (int64_t i = 0; i < n; i++, src += (SIZE)) {                                 \
            const se_lut_slot *slot = &lut[LOAD(src)];                                   \
            size_t len = slot->len;                                                      \
            COPY(p, slot);                                                               \
            if (se_unlikely(len == 0 || len > 23)) {                                     \
                if (len) {                                                               \
                    memcpy(p, slot, SE_LUT_SLOT);                                        \
                } else {                                                                 \
                    char k = slot->text[0];                                              \
                    len = put_nonfinite(p, k == 'N' ? 0 : k == '+' ? 1 : 2, o->nonfinite); \
                    if (len == 0) {                                                      \
                        *bad = i;                                                        \
                        *out = p;                                                        \
                        return SE_ERR_NONFINITE;                                         \
                    }                                                                    \
                    p[len] = ',';                                                        \
                }                                                                        \
            }                                                                            \
            p += len + 1;                                                                \
        }                                                                                \
        *out = p - (n > 0);                                                              \
        return SE_OK;                                                                    \
    }

static inline unsigned load16(const unsigned char *src)
{
    uint16_t bits;
    memcpy(&bits, src, 2);
    return bits;
}

static inline unsigned load8(const unsigned char *src)
{
    return *src;
}

LUT_RUN_WRITER(run_lut16, 2, load16, copy_slot24, )
LUT_RUN_WRITER(run_lut8, 1, load8, copy_slot24, )

#if SE_HAVE_X86_TARGETS
#include <immintrin.h>

#define SE_AVX2 __attribute__((target("avx2")))

SE_AVX2 static inline void copy_slot32(char *p, const se_lut_slot *slot)
{
    _mm256_storeu_si256((__m256i *)(void *)p, _mm256_loadu_si256((const __m256i *)(const void *)slot));
}

LUT_RUN_WRITER(run_lut16_avx2, 2, load16, copy_slot32, SE_AVX2)
LUT_RUN_WRITER(run_lut8_avx2, 1, load8, copy_slot32, SE_AVX2)
#else
#define run_lut16_avx2 run_lut16
#define run_lut8_avx2 run_lut8
#endif

/* The fastest of a run's versions that this CPU may use (se_simd.h). */
static se_run_writer best(se_run_writer avx512, se_run_writer avx2, se_run_writer scalar)
{
    if (avx512 != NULL && se_simd_enabled())
        return avx512;
    return se_simd_avx2_enabled() ? avx2 : scalar;
}

se_run_writer se_run_writer_for(se_dtype dtype, se_float_format format)
{
    switch (dtype) {
    case SE_FLOAT64: return best(run_f64_simd, run_f64_avx2, run_f64);
    case SE_FLOAT32:
        if (format == SE_FORMAT_SHORTEST)
            return best(run_f32_shortest_simd, run_f32_shortest_avx2, run_f32_shortest);
        return best(run_f32_exact_simd, run_f32_exact_avx2, run_f32_exact);
    case SE_FLOAT16:
    case SE_BFLOAT16: return best(NULL, run_lut16_avx2, run_lut16);
    case SE_FLOAT8_E4M3FN:
    case SE_FLOAT8_E5M2:
    case SE_FLOAT8_E4M3FNUZ:
    case SE_FLOAT8_E5M2FNUZ:
    case SE_FLOAT8_E8M0FNU: return best(NULL, run_lut8_avx2, run_lut8);
    case SE_INT8: return run_i8;
    case SE_INT16: return run_i16;
    case SE_INT32: return run_i32;
    case SE_INT64: return run_i64;
    case SE_UINT8: return run_u8;
    case SE_UINT16: return run_u16;
    case SE_UINT32: return run_u32;
    case SE_UINT64: return run_u64;
    case SE_BOOL: return run_bool;
    default: return run_bool;  /* unreachable: dtypes come from se_dtype_from_name */
    }
}
