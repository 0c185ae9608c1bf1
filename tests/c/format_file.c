/* The C core without Python, for tests/test_other_cpu.py: formats every element of a raw
 * file, or prints its CRC-32 taken whole and in two pieces combined.
 *
 *   format_file DTYPE FORMAT FILE   the text of FILE's elements as a 1-d tensor, on stdout
 *   format_file crc32 - FILE        crc32(FILE), then crc32_combine of it cut at a few places
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "se_crc32.h"
#include "se_format.h"
#include "se_lut.h"

static unsigned char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL || fseek(f, 0, SEEK_END) != 0)
        return NULL;
    long size = ftell(f);
    unsigned char *data = malloc(size > 0 ? (size_t)size : 1);
    if (size < 0 || data == NULL || fseek(f, 0, SEEK_SET) != 0 ||
        fread(data, 1, (size_t)size, f) != (size_t)size)
        return NULL;
    fclose(f);
    *n = (size_t)size;
    return data;
}

static int print_crc(const unsigned char *data, size_t n)
{
    printf("%08x", (unsigned)se_crc32(0, data, n));
    for (size_t cut = 0; cut <= n; cut += n / 5 + 7) {
        uint32_t a = se_crc32(0, data, cut), b = se_crc32(0, data + cut, n - cut);
        printf(" %08x", (unsigned)se_crc32_combine(a, b, n - cut));
    }
    printf("\n");
    return 0;
}

int main(int argc, char **argv)
{
    size_t n;
    unsigned char *data = argc == 4 ? read_all(argv[3], &n) : NULL;
    if (data == NULL) {
        fprintf(stderr, "usage: format_file DTYPE FORMAT FILE | format_file crc32 - FILE\n");
        return 2;
    }
    if (strcmp(argv[1], "crc32") == 0)
        return print_crc(data, n);
    se_dtype dtype;
    se_float_format format;
    if (se_dtype_from_name(argv[1], &dtype) != 0 ||
        se_float_format_from_name(argv[2], &format) != 0)
        return 2;
    se_lut_init();
    int64_t shape[1] = {(int64_t)(n / se_dtype_itemsize(dtype))};
    se_chunk chunk = {dtype, format, SE_NONFINITE_LITERAL, 1, shape, 0, shape[0]};
    size_t capacity, length;
    int64_t bad;
    char *out;
    if (se_chunk_capacity(&chunk, &capacity) != SE_OK || (out = malloc(capacity)) == NULL ||
        se_format_chunk(&chunk, data, out, capacity, &length, &bad) != SE_OK)
        return 3;
    fwrite(out, 1, length, stdout);
    return 0;
}
