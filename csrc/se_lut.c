/* Token tables of the small float dtypes: see se_lut.h. */
#include "se_lut.h"

#include <string.h>

#include "se_number.h"
#include "se_shortest.h"

/* A small binary format: sign, exp_bits of exponent (bias 2**(exp_bits-1) - 1),
 * mant_bits of fraction. ieee: the top exponent holds infinities and NaNs; otherwise
 * (float8_e4m3fn) only the all-ones pattern is NaN and there are no infinities. */
typedef struct {
    int exp_bits, mant_bits, ieee;
} small_format;

static const small_format FMT_F16 = {5, 10, 1};
static const small_format FMT_BF16 = {8, 7, 1};
static const small_format FMT_E4M3FN = {4, 3, 0};
static const small_format FMT_E5M2 = {5, 2, 1};

static se_lut_slot lut16[2][2][65536]; /* [float16, bfloat16][exact, shortest] */
static se_lut_slot lut8[2][2][256];    /* [e4m3fn, e5m2][exact, shortest] */

/* Fill the slot of one pattern in both formats. */
static void fill(const small_format *f, unsigned bits, se_lut_slot *exact, se_lut_slot *shortest)
{
    unsigned mant_mask = (1u << f->mant_bits) - 1;
    unsigned exp_max = (1u << f->exp_bits) - 1;
    unsigned sign = bits >> (f->exp_bits + f->mant_bits) & 1;
    unsigned e = bits >> f->mant_bits & exp_max;
    unsigned t = bits & mant_mask;
    int bias = (1 << (f->exp_bits - 1)) - 1;
    char buf[SE_TOKEN_SPACE];

    memset(exact, 0, sizeof *exact);
    memset(shortest, 0, sizeof *shortest);
    int nan = f->ieee ? (e == exp_max && t != 0) : (e == exp_max && t == mant_mask);
    int inf = f->ieee && e == exp_max && t == 0;
    if (nan || inf) {
        exact->text[0] = shortest->text[0] = nan ? 'N' : (sign ? '-' : '+');
        return;
    }
    /* exact: repr of the value widened to float64 */
    uint64_t c = e == 0 ? t : (t | (1u << f->mant_bits));
    int q = (e == 0 ? 1 : (int)e) - bias - f->mant_bits;
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
    se_decimal d = se_shortest_binary(c, q, t == 0 && e > 1);
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
    for (unsigned b = 0; b < 256; b++) {
        fill(&FMT_E4M3FN, b, &lut8[0][0][b], &lut8[0][1][b]);
        fill(&FMT_E5M2, b, &lut8[1][0][b], &lut8[1][1][b]);
    }
}

const se_lut_slot *se_lut_get(se_dtype dtype, se_float_format format)
{
    switch (dtype) {
    case SE_FLOAT16: return lut16[0][format];
    case SE_BFLOAT16: return lut16[1][format];
    case SE_FLOAT8_E4M3FN: return lut8[0][format];
    case SE_FLOAT8_E5M2: return lut8[1][format];
    default: return NULL;
    }
}
