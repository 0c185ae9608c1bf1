"""Generate csrc/se_tables.h: the powers of ten of the Schubfach conversion.

Run from the repository root:  python scripts/gen_tables.py  (rewrites csrc/se_tables.h)
                               python scripts/gen_tables.py --check  (fails if it is stale)

For each decimal exponent k the conversion needs g(k), an over-approximation of 10**-k
scaled into [2**125, 2**126):

    g(k) = floor(10**-k * 2**(125 - floor(-k * log2(10)))) + 1

(Giulietti, "The Schubfach way to render doubles", 2020). The float64 path uses all 126 bits,
stored as a high word (62 bits) and a low word (64 bits); the float32 path uses the top 63
bits plus one. Everything is computed with Python integers, so the table is exact.

Per biased exponent of float64 and float32 it also tabulates the index of g(k) and the
shift h, which the float loops look up instead of computing them from q.

The script also proves, over every exponent the C code can pass, the multiply-and-shift
forms of floor(q * log10(2)), floor(log10(3/4 * 2**q)) and floor(e * log2(10)) that
se_shortest.c uses instead of floating-point logarithms.
"""
import os
import sys

from generated_header import write_or_check

HERE = os.path.dirname(os.path.abspath(__file__))
OUTPUT = os.path.join(HERE, "..", "csrc", "se_tables.h")

# Binary exponents q of c * 2**q reachable from float64 (subnormal q = -1074, largest 971)
# and float32 (-149 .. 104). The small dtypes (float16, bfloat16, float8) fall inside the
# float64 range and use its table.
Q64 = (-1074, 971)
Q32 = (-149, 104)


def floor_log2_pow10(e):
    """floor(e * log2(10)), exactly."""
    if e >= 0:
        return (10 ** e).bit_length() - 1
    return -((10 ** -e).bit_length())  # 10**m (m >= 1) is never a power of two


def floor_log10_pow2(q):
    """floor(q * log10(2)), exactly."""
    if q >= 0:
        return len(str(2 ** q)) - 1
    # largest k with 10**k <= 2**q, i.e. 2**-q <= 10**-k
    k = 0
    while 10 ** (-k) < 2 ** (-q):
        k -= 1
    return k


def floor_log10_three_quarters_pow2(q):
    """floor(log10(3/4 * 2**q)) = floor(log10(3 * 2**(q-2))), exactly."""
    # compare 3 * 2**(q-2) against powers of ten with integers only
    num, den = 3, 4
    if q >= 0:
        num *= 2 ** q
    else:
        den *= 2 ** -q
    k = floor_log10_pow2(q)  # the answer is k or k - 1
    # 10**k <= num/den ?
    if k >= 0:
        ok = 10 ** k * den <= num
    else:
        ok = den <= num * 10 ** -k
    return k if ok else k - 1


def g126(k):
    e = -k
    shift = 125 - floor_log2_pow10(e)
    if e >= 0:
        value = 10 ** e << shift if shift >= 0 else (10 ** e) >> -shift
    else:
        value = (1 << shift) // 10 ** -e
    g = value + 1
    assert 1 << 125 <= g < 1 << 126, k
    return g


def check_shift_formulas():
    """The C code's integer forms of the logarithms, proven over every input it uses."""
    for q in range(Q64[0] - 2, Q64[1] + 3):
        assert (q * 661971961083) >> 41 == floor_log10_pow2(q), q
        assert (q * 661971961083 - 274743187321) >> 41 == floor_log10_three_quarters_pow2(q), q
    for e in range(-400, 401):
        assert (e * 913124641741) >> 38 == floor_log2_pow10(e), e


def k_range(q_range):
    lo = min(floor_log10_pow2(q_range[0]), floor_log10_three_quarters_pow2(q_range[0]))
    hi = max(floor_log10_pow2(q_range[1]), floor_log10_three_quarters_pow2(q_range[1]))
    return lo, hi


def exponent_tables(k64, k32):
    """Per biased exponent e (regular spacing): the table index k - K_MIN and the shift h
    that the conversion would compute from q, so the float loops look them up. float64:
    c * 2**(e - 1075); float32 exact mode converts the float64 c << 29 * 2**(e - 179),
    shortest mode c * 2**(e - 150)."""
    def entry(q, k_min, extra):
        k = floor_log10_pow2(q)
        h = q + floor_log2_pow10(-k) + extra
        return k - k_min, h

    out = [
        "/* se_f64_kh[e] = {k - SE_G64_K_MIN, h} of a float64 with biased exponent e (regular",
        " * spacing); entries 0 and 2047 are unused copies of 1 and 2046 */",
        "static const int16_t se_f64_kh[2048][2] = {",
    ]
    for e in range(2048):
        index, h = entry(min(max(e, 1), 2046) - 1075, k64[0], 2)
        out.append(f"    {{{index}, {h}}},  /* e = {e} */")
    out += ["};", ""]
    for name, what, k_min, q_of, extra in (
        ("se_f32_exact_kh", "exact (float64 table)", k64[0], lambda e: e - 179, 2),
        ("se_f32_shortest_kh", "shortest (float32 table)", k32[0], lambda e: e - 150, 33),
    ):
        out.append(f"/* {name}[e] = {{k - K_MIN, h}} of a float32 with biased exponent e, {what};")
        out.append(" * entries 0 and 255 (subnormals, non-finite) are unused copies of 1 and 254 */")
        out.append(f"static const int16_t {name}[256][2] = {{")
        for e in range(256):
            index, h = entry(q_of(min(max(e, 1), 254)), k_min, extra)
            out.append(f"    {{{index}, {h}}},  /* e = {e} */")
        out.append("};")
        out.append("")
    return out


def render():
    check_shift_formulas()
    k64 = k_range(Q64)
    k32 = k_range(Q32)
    lines = [
        "/* DO NOT EDIT - generated by scripts/gen_tables.py */",
        "/* Powers of ten for the Schubfach conversion (see the generator for the formula). */",
        "#ifndef SE_TABLES_H",
        "#define SE_TABLES_H",
        "",
        "#include <stdint.h>",
        "",
        f"#define SE_G64_K_MIN ({k64[0]})",
        f"#define SE_G64_K_MAX ({k64[1]})",
        f"#define SE_G32_K_MIN ({k32[0]})",
        f"#define SE_G32_K_MAX ({k32[1]})",
        "",
        "/* se_g64[k - SE_G64_K_MIN] = {g(k) >> 64, g(k) mod 2**64} */",
        f"static const uint64_t se_g64[{k64[1] - k64[0] + 1}][2] = {{",
    ]
    for k in range(k64[0], k64[1] + 1):
        g = g126(k)
        lines.append(f"    {{0x{g >> 64:016x}u, 0x{g & (2 ** 64 - 1):016x}u}},  /* k = {k} */")
    lines.append("};")
    lines.append("")
    lines.append("/* se_g32[k - SE_G32_K_MIN] = (g(k) >> 63) + 1 */")
    lines.append(f"static const uint64_t se_g32[{k32[1] - k32[0] + 1}] = {{")
    for k in range(k32[0], k32[1] + 1):
        lines.append(f"    0x{(g126(k) >> 63) + 1:016x}u,  /* k = {k} */")
    lines.append("};")
    lines.append("")
    lines += exponent_tables(k64, k32)
    lines.append("#endif /* SE_TABLES_H */")
    return "\n".join(lines) + "\n"


def main(argv):
    write_or_check(argv, OUTPUT, render(), __file__)


if __name__ == "__main__":
    main(sys.argv[1:])
