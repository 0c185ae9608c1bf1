/* Schubfach: see se_shortest.h. Notation follows the paper: the value is c * 2**q, its
 * rounding interval is [c - 1/2, c + 1/2] * 2**q (the lower end c - 1/4 when the value is
 * a power of two whose lower neighbour is closer), ends included when c is even. With
 * k = floor(log10(width)), the value and the interval's ends are scaled by 10**-k and by 4
 * (two fraction bits) and rounded to odd, which keeps every comparison with an even
 * integer exact. The value's scaling is the one 64x128-bit multiply of a conversion; the
 * ends differ from it by g shifted, so they cost additions only. */
#include "se_shortest.h"

#include <string.h>

#include "se_schubfach.h"

se_decimal se_shortest_binary(uint64_t c, int q, int lower_closer)
{
    return convert64(c, q, lower_closer);
}

se_decimal se_shortest_f64(double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    uint64_t t = bits & ((1ULL << 52) - 1);
    int e = (int)((bits >> 52) & 0x7ff);
    if (e == 0)
        return convert64(t, -1074, 0);
    if (t == 0 && e > 1)
        return convert64(1ULL << 52, e - 1075, 1);
    return convert64(t | (1ULL << 52), e - 1075, 0);
}

se_decimal se_shortest_f32(float v)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    uint64_t t = bits & ((1u << 23) - 1);
    int e = (int)((bits >> 23) & 0xff);
    if (e == 0)
        return convert32(t, -149, 0);
    return convert32(t | (1u << 23), e - 150, t == 0 && e > 1);
}
