/* One number -> its JSON token, laid out like Python's repr / str.
 *
 * Every writer fills a caller-owned buffer and returns the token's length. Each requires
 * SE_TOKEN_SPACE bytes of space at `out`, even when the token is shorter: writers store
 * whole words and may scribble past the token's end (never past SE_TOKEN_SPACE).
 * No state: safe from any number of threads.
 */
#ifndef SE_NUMBER_H
#define SE_NUMBER_H

#include <stddef.h>
#include <stdint.h>

#define SE_TOKEN_SPACE 48
/* The longest token a float can give: "-1.7976931348623157e+308" and
 * "-0.00012345678901234567" are 24 and 23 bytes; "\"-Infinity\"" is 11. */
#define SE_FLOAT_TOKEN_MAX 24

/* digits * 10**exponent (digits >= 1, at most 17 digits, trailing zeros allowed) with the
 * sign, laid out like repr: fixed notation when the decimal exponent e of d.ddd x 10**e
 * satisfies -4 <= e < 16 (always with a fraction, "1.0"), else d.ddde+XX ("1e-05"). */
size_t se_write_decimal(char *out, int negative, uint64_t digits, int exponent);

/* repr(v) of a finite float64 ("0.1", "-0.0", "5e-324", "1e+16"). */
size_t se_write_f64(char *out, double v);

/* The shortest text that reads back as the same float32 (finite), repr's layout. */
size_t se_write_f32_shortest(char *out, float v);

/* Integers as Python's str. */
size_t se_write_i64(char *out, int64_t v);
size_t se_write_u64(char *out, uint64_t v);

#endif /* SE_NUMBER_H */
