/* Names and sizes of the formatter's dtypes and options: see se_dtype.h. */
#include "se_dtype.h"

#include <string.h>

static const char *const dtype_names[SE_DTYPE_COUNT] = {
    "float64", "float32", "float16", "bfloat16", "float8_e4m3fn", "float8_e5m2",
    "int8", "int16", "int32", "int64", "uint8", "bool",
    "uint16", "uint32", "uint64", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu",
};
static const size_t dtype_sizes[SE_DTYPE_COUNT] = {8, 4, 2, 2, 1, 1, 1, 2, 4, 8, 1, 1, 2, 4, 8,
                                                   1, 1, 1};

static int lookup(const char *name, const char *const *names, int count)
{
    for (int i = 0; i < count; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

int se_dtype_from_name(const char *name, se_dtype *out)
{
    int i = lookup(name, dtype_names, SE_DTYPE_COUNT);
    if (i < 0)
        return -1;
    *out = (se_dtype)i;
    return 0;
}

int se_float_format_from_name(const char *name, se_float_format *out)
{
    static const char *const names[] = {"exact", "shortest"};
    int i = lookup(name, names, 2);
    if (i < 0)
        return -1;
    *out = (se_float_format)i;
    return 0;
}

int se_nonfinite_from_name(const char *name, se_nonfinite *out)
{
    static const char *const names[] = {"error", "null", "string", "literal"};
    int i = lookup(name, names, 4);
    if (i < 0)
        return -1;
    *out = (se_nonfinite)i;
    return 0;
}

size_t se_dtype_itemsize(se_dtype dtype)
{
    return dtype_sizes[dtype];
}
