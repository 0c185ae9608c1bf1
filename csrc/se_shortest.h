/* Shortest round-trip binary -> decimal conversion (Schubfach, after R. Giulietti,
 * "The Schubfach way to render doubles", 2020; written here from the paper).
 *
 * A finite, non-zero binary float is c * 2**q with an integer significand c. The result is
 * the decimal digits * 10**exponent with the fewest digits that lies inside the value's
 * rounding interval (the reals that round back to it under round-half-even); when several
 * have the fewest digits, the one closest to the value, ties to an even digit string.
 * That is the digit string of Python's repr. `digits` may end in zeros (the caller strips
 * them); it has at most 17 digits for float64, 9 for float32.
 *
 * No state, no allocation: safe from any number of threads.
 */
#ifndef SE_SHORTEST_H
#define SE_SHORTEST_H

#include <stdint.h>

typedef struct {
    uint64_t digits;  /* >= 1 */
    int exponent;     /* value = digits * 10**exponent */
} se_decimal;

/* |v| for a finite, non-zero float64 (the sign is ignored). */
se_decimal se_shortest_f64(double v);

/* |v| for a finite, non-zero float32, shortest at float32 precision (not the shortest
 * text of the value widened to float64: 0.1f gives 1 * 10**-1). */
se_decimal se_shortest_f32(float v);

/* Any binary format whose values are float64 values: c >= 1, -1074 <= q <= 971, c < 2**53.
 * `lower_closer` is 1 when the value is a power of two above the format's smallest normal
 * (the next value below is half as far as the next above), else 0. Used once per pattern
 * to build the float16 / bfloat16 / float8 tables. */
se_decimal se_shortest_binary(uint64_t c, int q, int lower_closer);

#endif /* SE_SHORTEST_H */
