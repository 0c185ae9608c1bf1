/* Token tables of the small float dtypes (float16, bfloat16, float8_e4m3fn, float8_e5m2):
 * at most 65,536 bit patterns each, so every token of both float formats is computed once,
 * by se_lut_init(), and formatting becomes a table copy.
 *
 * Call se_lut_init() once before any thread formats (the module's init does); after it the
 * tables are read-only.
 */
#ifndef SE_LUT_H
#define SE_LUT_H

#include <stdint.h>

#include "se_dtype.h"

#define SE_LUT_SLOT 32

/* One token, followed by a "," (text[len]) so that a run can copy token and separator at
 * once. len == 0 marks a non-finite pattern; then text[0] is 'N' (NaN), '+' or '-'
 * (infinity of that sign). Copying a whole slot (SE_LUT_SLOT bytes) is allowed. */
typedef struct {
    char text[SE_LUT_SLOT - 1];
    uint8_t len;
} se_lut_slot;

void se_lut_init(void);

/* The table of a small float dtype in a float format, indexed by bit pattern; NULL for any
 * other dtype. */
const se_lut_slot *se_lut_get(se_dtype dtype, se_float_format format);

#endif /* SE_LUT_H */
