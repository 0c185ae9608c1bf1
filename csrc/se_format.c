/* Validation, output sizes and the row/bracket loop: see se_format.h. */
#include "se_format.h"

#include <string.h>

#include "se_lut.h"
#include "se_number.h"
#include "se_runs.h"

/* ---- validation and sizes -------------------------------------------------------- */

se_status se_chunk_check(const se_chunk *chunk, int64_t *total)
{
    int64_t product = 1;
    int overflow = 0, empty = 0;
    if (chunk->ndim < 0)
        return SE_ERR_SHAPE;
    for (int d = 0; d < chunk->ndim; d++) {
        int64_t dim = chunk->shape[d];
        if (dim < 0)
            return SE_ERR_SHAPE;
        if (dim == 0)
            empty = 1;
        else if (product > INT64_MAX / dim)
            overflow = 1;
        else
            product *= dim;
    }
    if (empty)
        product = 0;
    else if (overflow)
        return SE_ERR_SHAPE;
    if (chunk->start < 0 || chunk->count < 0 || chunk->start > product ||
        chunk->count > product - chunk->start)
        return SE_ERR_SHAPE;
    *total = product;
    return SE_OK;
}

static size_t token_max(se_dtype dtype)
{
    switch (dtype) {
    case SE_INT8: return 4;    /* -128 */
    case SE_INT16: return 6;   /* -32768 */
    case SE_INT32: return 11;  /* -2147483648 */
    case SE_INT64: return 20;  /* -9223372036854775808 */
    case SE_UINT8: return 3;
    case SE_BOOL: return 5;    /* false */
    case SE_UINT16: return 5;
    case SE_UINT32: return 10; /* 4294967295 */
    case SE_UINT64: return 20; /* 18446744073709551615 */
    default: return SE_FLOAT_TOKEN_MAX;
    }
}

/* Conversions, sums and products of sizes, with a sticky overflow flag. */
static size_t to_size(int64_t v, int *overflow)
{
    if ((uint64_t)v > SIZE_MAX)
        *overflow = 1;
    return (size_t)v;
}

static size_t add(size_t a, size_t b, int *overflow)
{
    if (a > SIZE_MAX - b)
        *overflow = 1;
    return a + b;
}

static size_t mul(size_t a, size_t b, int *overflow)
{
    if (b && a > SIZE_MAX / b)
        *overflow = 1;
    return a * b;
}

/* Index of the first zero dimension of an empty tensor (ndim when there is none). */
static int first_zero_dim(const int64_t *shape, int ndim)
{
    int z = 0;
    while (z < ndim && shape[z] != 0)
        z++;
    return z;
}

/* Text length of elements [start, start + count) of a non-empty tensor, tokens of at most
 * `token` bytes: every token and a comma, both bracket runs, and the brackets of the
 * separators (dimension j >= 1 closes before each index in the range that is a positive
 * multiple of the product of dims j..). */
static size_t text_length(const int64_t *shape, int ndim, int64_t start, int64_t count,
                          size_t token, int *overflow)
{
    size_t size = mul(to_size(count, overflow), token + 1, overflow);
    size = add(size, mul(2, (size_t)ndim, overflow), overflow);
    int64_t lo = start > 0 ? start : 1;
    int64_t end = start + count;
    uint64_t block = 1;
    for (int j = ndim - 1; j >= 1 && end > lo; j--) {
        block *= (uint64_t)shape[j];  /* at most the element count: no overflow */
        uint64_t closes = (uint64_t)(end - 1) / block - (uint64_t)(lo - 1) / block;
        size = add(size, mul(2, to_size((int64_t)closes, overflow), overflow), overflow);
    }
    return size;
}

/* An empty tensor is the tensor of its dims before the first zero, each element "[]". */
static int64_t empty_outer_count(const int64_t *shape, int z, int *overflow)
{
    int64_t product = 1;
    for (int d = 0; d < z; d++) {
        if (product > INT64_MAX / shape[d])
            *overflow = 1;
        else
            product *= shape[d];
    }
    return product;
}

se_status se_chunk_capacity(const se_chunk *chunk, size_t *capacity)
{
    int overflow = 0;
    int64_t total;
    se_status st = se_chunk_check(chunk, &total);
    if (st != SE_OK)
        return st;
    size_t size;
    if (total > 0) {
        size = text_length(chunk->shape, chunk->ndim, chunk->start, chunk->count,
                           token_max(chunk->dtype), &overflow);
    } else {
        int z = first_zero_dim(chunk->shape, chunk->ndim);
        int64_t outer = empty_outer_count(chunk->shape, z, &overflow);
        if (overflow)
            return SE_ERR_TOO_LARGE;
        size = z == 0 ? 2 : text_length(chunk->shape, z, 0, outer, 2, &overflow);
    }
    size = add(size, SE_TOKEN_SPACE, &overflow);
    if (overflow)
        return SE_ERR_TOO_LARGE;
    *capacity = size;
    return SE_OK;
}

/* ---- the row/bracket loop -------------------------------------------------------- */

/* Dimensions that close before flat index i, i a positive multiple of the last dim. */
static int closing_dims(const int64_t *shape, int ndim, int64_t i)
{
    int m = 1;
    int64_t block = shape[ndim - 1];
    for (int j = ndim - 2; j >= 1; j--) {
        block *= shape[j];
        if (i % block != 0)
            break;
        m++;
    }
    return m;
}

static se_status write_elements(const int64_t *shape, int ndim, int64_t total, int64_t start,
                                int64_t count, const unsigned char *src, size_t itemsize,
                                se_run_writer run, const se_run_options *options, char **out,
                                int64_t *bad_index)
{
    char *p = *out;
    int64_t bad = 0;
    se_status st = SE_OK;
    if (count == 0)
        return SE_OK;
    if (ndim == 0) {
        st = run(src, 1, out, options, &bad);
        *bad_index = bad;
        return st;
    }
    int64_t inner = shape[ndim - 1];
    int64_t i = start, stop = start + count;
    if (i == 0) {
        memset(p, '[', (size_t)ndim);
        p += ndim;
    }
    while (i < stop) {
        int64_t pos = i % inner;
        int64_t n = inner - pos < stop - i ? inner - pos : stop - i;
        if (i > 0) {
            if (pos == 0) {
                int m = closing_dims(shape, ndim, i);
                memset(p, ']', (size_t)m);
                p[m] = ',';
                memset(p + m + 1, '[', (size_t)m);
                p += 2 * m + 1;
            } else {
                *p++ = ',';
            }
        }
        st = run(src, n, &p, options, &bad);
        if (st != SE_OK) {
            *bad_index = i + bad;
            return st;
        }
        src += (size_t)n * itemsize;
        i += n;
    }
    if (stop == total) {
        memset(p, ']', (size_t)ndim);
        p += ndim;
    }
    *out = p;
    return SE_OK;
}

static se_status run_empty_lists(const unsigned char *src, int64_t n, char **out,
                                 const se_run_options *options, int64_t *bad)
{
    char *p = *out;
    for (int64_t i = 0; i < n; i++) {
        if (i)
            *p++ = ',';
        memcpy(p, "[]", 2);
        p += 2;
    }
    *out = p;
    return SE_OK;
}

se_status se_format_chunk(const se_chunk *chunk, const void *data, char *out, size_t capacity,
                          size_t *length, int64_t *bad_index)
{
    size_t needed;
    int64_t total;
    se_status st = se_chunk_capacity(chunk, &needed);
    if (st != SE_OK)
        return st;
    if (capacity < needed)
        return SE_ERR_BUFFER;
    st = se_chunk_check(chunk, &total);  /* passed inside se_chunk_capacity: sets total */
    if (st != SE_OK)
        return st;
    se_run_options options;
    options.nonfinite = chunk->nonfinite;
    options.lut = se_lut_get(chunk->dtype, chunk->float_format);
    char *p = out;
    if (total > 0) {
        st = write_elements(chunk->shape, chunk->ndim, total, chunk->start, chunk->count, data,
                            se_dtype_itemsize(chunk->dtype),
                            se_run_writer_for(chunk->dtype, chunk->float_format), &options, &p,
                            bad_index);
    } else {
        int z = first_zero_dim(chunk->shape, chunk->ndim);
        if (z == 0) {
            memcpy(p, "[]", 2);
            p += 2;
        } else {
            int overflow = 0;
            int64_t outer = empty_outer_count(chunk->shape, z, &overflow);
            st = write_elements(chunk->shape, z, outer, 0, outer, NULL, 0, run_empty_lists,
                                &options, &p, bad_index);
        }
    }
    *length = (size_t)(p - out);
    return st;
}
