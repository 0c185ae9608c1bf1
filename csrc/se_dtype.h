/* The element types and options the formatter knows, and their names. */
#ifndef SE_DTYPE_H
#define SE_DTYPE_H

#include <stddef.h>

typedef enum {
    SE_FLOAT64, SE_FLOAT32, SE_FLOAT16, SE_BFLOAT16, SE_FLOAT8_E4M3FN, SE_FLOAT8_E5M2,
    SE_INT8, SE_INT16, SE_INT32, SE_INT64, SE_UINT8, SE_BOOL,
    SE_UINT16, SE_UINT32, SE_UINT64, SE_FLOAT8_E4M3FNUZ, SE_FLOAT8_E5M2FNUZ, SE_FLOAT8_E8M0FNU,
    SE_DTYPE_COUNT
} se_dtype;

typedef enum { SE_FORMAT_EXACT, SE_FORMAT_SHORTEST } se_float_format;

typedef enum {
    SE_NONFINITE_ERROR, SE_NONFINITE_NULL, SE_NONFINITE_STRING, SE_NONFINITE_LITERAL
} se_nonfinite;

/* Each returns 0 and sets *out for a known name (torch's dtype names without "torch.";
 * "exact"/"shortest"; "error"/"null"/"string"/"literal"), else -1. */
int se_dtype_from_name(const char *name, se_dtype *out);
int se_float_format_from_name(const char *name, se_float_format *out);
int se_nonfinite_from_name(const char *name, se_nonfinite *out);

size_t se_dtype_itemsize(se_dtype dtype);

#endif /* SE_DTYPE_H */
