/* Token tables of the small float dtypes: see se_lut.h. */
#include "se_lut.h"

#include <string.h>

#include "se_number.h"
#include "se_shortest.h"

/* Where a small format keeps its NaNs (and infinities). */
typedef enum {
    RULE_IEEE,  /* the top exponent: infinities (fraction 0) and NaNs */
    RULE_FN,    /* "finite": only the all-ones magnitude is NaN (float8_e4m3fn, e8m0fnu) */
    RULE_FNUZ   /* "finite, unsigned zero": the pattern of -0 is the NaN (AMD's float8s) */
} nonfinite_rule;

/* A small binary format: a sign bit (unless unsigned), exp_bits of exponent with its bias,
 * mant_bits of fraction; an exponent field of 0 holds zero and subnormals, except in
 * float8_e8m0fnu (no sign, no fraction, no zero: the pattern e is 2**(e - 127)). */
typedef struct {
    int exp_bits, mant_bits, bias;
    nonfinite_rule rule;
    int is_signed, subnormals;
} small_format;

static const small_format FMT_F16 = {5, 10, 15, RULE_IEEE, 1, 1};
static const small_format FMT_BF16 = {8, 7, 127, RULE_IEEE, 1, 1};
static const small_format FMT_E4M3FN = {4, 3, 7, RULE_FN, 1, 1};
static const small_format FMT_E5M2 = {5, 2, 15, RULE_IEEE, 1, 1};
static const small_format FMT_E4M3FNUZ = {4, 3, 8, RULE_FNUZ, 1, 1};
static const small_format FMT_E5M2FNUZ = {5, 2, 16, RULE_FNUZ, 1, 1};
static const small_format FMT_E8M0FNU = {8, 0, 127, RULE_FN, 0, 0};

static const small_format *const FORMATS8[] = {&FMT_E4M3FN, &FMT_E5M2, &FMT_E4M3FNUZ,
                                               &FMT_E5M2FNUZ, &FMT_E8M0FNU};
#define FORMATS8_COUNT (sizeof FORMATS8 / sizeof FORMATS8[0])

static se_lut_slot lut16[2][2][65536];            /* [float16, bfloat16][exact, shortest] */
static se_lut_slot lut8[FORMATS8_COUNT][2][256];  /* [FORMATS8's][exact, shortest] */

/* Fill the slot of one pattern in both formats. */
static void fill(const small_format *f, unsigned bits, se_lut_slot *exact, se_lut_slot *shortest)
{
    unsigned mant_mask = (1u << f->mant_bits) - 1;
    unsigned exp_max = (1u << f->exp_bits) - 1;
    unsigned sign = f->is_signed ? bits >> (f->exp_bits + f->mant_bits) & 1 : 0;
    unsigned e = bits >> f->mant_bits & exp_max;
    unsigned t = bits & mant_mask;
    int bias = f->bias;
    char buf[SE_TOKEN_SPACE];

    memset(exact, 0, sizeof *exact);
    memset(shortest, 0, sizeof *shortest);
    int nan, inf = 0;
    switch (f->rule) {
    case RULE_IEEE:
        nan = e == exp_max && t != 0;
        inf = e == exp_max && t == 0;
        break;
    case RULE_FN: nan = e == exp_max && t == mant_mask; break;
    default: nan = sign && e == 0 && t == 0; break;  /* RULE_FNUZ */
    }
    if (nan || inf) {
        exact->text[0] = shortest->text[0] = nan ? 'N' : (sign ? '-' : '+');
        return;
    }
    /* exact: repr of the value widened to float64 */
    int subnormal = e == 0 && f->subnormals;
    uint64_t c = subnormal ? t : (t | (1u << f->mant_bits));
    int q = (subnormal ? 1 : (int)e) - bias - f->mant_bits;
    size_t n;
    if (c == 0) {
        n = se_write_f64(buf, sign ? -0.0 : 0.0);
    } else {
        double v = (double)c;
        for (int i = 0; i < q; i++)
            v *= 2;
        for (int i = 0; i > q; i--)
            v /= 2;  /* exact: every value of these formats is a float64 */
        n = se_write_f64(buf, sign ? -v : v);
    }
    memcpy(exact->text, buf, n);
    exact->text[n] = ',';
    exact->len = (uint8_t)n;
    /* shortest: the fewest digits that read back to this pattern at its own precision */
    if (c == 0) {
        memcpy(shortest, exact, sizeof *shortest);
        return;
    }
    /* a power of two whose lower neighbour is half as far as its upper one: any binade's
     * first value but the lowest binade's (the subnormals below it, or nothing below it) */
    int lower_closer = t == 0 && e > (f->subnormals ? 1u : 0u);
    se_decimal d = se_shortest_binary(c, q, lower_closer);
    n = se_write_decimal(buf, (int)sign, d.digits, d.exponent);
    if (n > exact->len) {
        /* The fewest digits are a power of ten padded with zeros (bfloat16 9984 would be
         * "10000.0"): the exact token is the shorter text. */
        memcpy(shortest, exact, sizeof *shortest);
        return;
    }
    memcpy(shortest->text, buf, n);
    shortest->text[n] = ',';
    shortest->len = (uint8_t)n;
}

void se_lut_init(void)
{
    for (unsigned b = 0; b < 65536; b++) {
        fill(&FMT_F16, b, &lut16[0][0][b], &lut16[0][1][b]);
        fill(&FMT_BF16, b, &lut16[1][0][b], &lut16[1][1][b]);
    }
    for (unsigned b = 0; b < 256; b++)
        for (size_t i = 0; i < FORMATS8_COUNT; i++)
            fill(FORMATS8[i], b, &lut8[i][0][b], &lut8[i][1][b]);
}

const se_lut_slot *se_lut_get(se_dtype dtype, se_float_format format)
{
    switch (dtype) {
    case SE_FLOAT16: return lut16[0][format];
    case SE_BFLOAT16: return lut16[1][format];
    case SE_FLOAT8_E4M3FN: return lut8[0][format];
    case SE_FLOAT8_E5M2: return lut8[1][format];
    case SE_FLOAT8_E4M3FNUZ: return lut8[2][format];
    case SE_FLOAT8_E5M2FNUZ: return lut8[3][format];
    case SE_FLOAT8_E8M0FNU: return lut8[4][format];
    default: return NULL;
    }
}
