/* One chunk of a tensor's raw buffer -> its slice of json.dumps(t.tolist()).
 *
 * The contract is the docstring of streamexport/formatter.py: the chunk holds the elements
 * of flat, row-major indices [start, start + count) of a tensor of `shape`; the chunk at
 * index 0 opens the brackets, the one that ends at the last element closes them, every
 * element after the first is preceded by "]"*m "," "["*m (m dimensions close there).
 *
 * Use: se_chunk_check(), then se_chunk_capacity() for the buffer size, then
 * se_format_chunk() into a buffer of at least that size. No Python, no allocation, no
 * shared mutable state (after se_lut_init()): safe from any number of threads.
 */
#ifndef SE_FORMAT_H
#define SE_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "se_dtype.h"

typedef enum {
    SE_OK = 0,
    SE_ERR_NONFINITE,  /* NaN or infinity under SE_NONFINITE_ERROR; *bad_index is its flat index */
    SE_ERR_BUFFER,     /* the output buffer is smaller than se_chunk_capacity() */
    SE_ERR_SHAPE,      /* negative dimension, element count >= 2**63, range outside the tensor */
    SE_ERR_TOO_LARGE   /* the text would not fit in a size_t */
} se_status;

typedef struct {
    se_dtype dtype;
    se_float_format float_format;
    se_nonfinite nonfinite;
    int ndim;
    const int64_t *shape;  /* ndim dimensions */
    int64_t start;         /* flat index of the chunk's first element */
    int64_t count;         /* elements in the chunk */
} se_chunk;

/* Validates shape, start and count; sets *total to the tensor's element count. */
se_status se_chunk_check(const se_chunk *chunk, int64_t *total);

/* Bytes the output buffer needs for this (checked) chunk: the longest possible text plus
 * SE_TOKEN_SPACE of working room. */
se_status se_chunk_capacity(const se_chunk *chunk, size_t *capacity);

/* Formats `chunk.count` elements read from `data` (any alignment) into out[0..capacity);
 * sets *length. On SE_ERR_NONFINITE, *bad_index is the tensor's flat index of the first
 * offending element and out holds garbage. */
se_status se_format_chunk(const se_chunk *chunk, const void *data, char *out, size_t capacity,
                          size_t *length, int64_t *bad_index);

#endif /* SE_FORMAT_H */
