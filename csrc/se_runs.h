/* Writers of a run of consecutive elements of one dtype: n tokens joined by ",".
 *
 * A run writer reads n elements from src (any alignment), writes them at *out, advances
 * *out and returns SE_OK; it requires n * (token_max + 1) + SE_TOKEN_SPACE bytes of space.
 * On a NaN or infinity under SE_NONFINITE_ERROR it stops, sets *bad to the element's offset
 * in the run and returns SE_ERR_NONFINITE.
 */
#ifndef SE_RUNS_H
#define SE_RUNS_H

#include <stdint.h>

#include "se_format.h"
#include "se_lut.h"

typedef struct {
    se_nonfinite nonfinite;
    const se_lut_slot *lut;  /* small float dtypes: the table of the float format */
} se_run_options;

typedef se_status (*se_run_writer)(const unsigned char *src, int64_t n, char **out,
                                   const se_run_options *options, int64_t *bad);

/* The writer for a dtype in a float format (never NULL for a valid dtype). */
se_run_writer se_run_writer_for(se_dtype dtype, se_float_format format);

#endif /* SE_RUNS_H */
