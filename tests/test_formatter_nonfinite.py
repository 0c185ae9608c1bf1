"""Non-finite values under each policy, for every float dtype, in both float formats.

Patterns are built from bits, so NaNs with either sign and other payloads are covered, and
float8_e4m3fn (no infinity, NaN only at 0x7f/0xff), the fnuz float8s (NaN only at 0x80, the
pattern of -0) and float8_e8m0fnu (NaN only at 0xff) are tested by their own definitions.
"""
import json
import math

import numpy as np
import pytest

from streamexport.errors import FormatError, NonFiniteError

BITS = {"float64": np.uint64, "float32": np.uint32, "float16": np.uint16,
        "bfloat16": np.uint16, "float8_e4m3fn": np.uint8, "float8_e5m2": np.uint8,
        "float8_e4m3fnuz": np.uint8, "float8_e5m2fnuz": np.uint8, "float8_e8m0fnu": np.uint8}

# (one, nan, -nan, other nan payload, inf, -inf) as bit patterns; None where the format has none
PATTERNS = {
    "float64": (0x3FF0000000000000, 0x7FF8000000000000, 0xFFF8000000000000, 0x7FF0000000000001,
                0x7FF0000000000000, 0xFFF0000000000000),
    "float32": (0x3F800000, 0x7FC00000, 0xFFC00000, 0x7F800001, 0x7F800000, 0xFF800000),
    "float16": (0x3C00, 0x7E00, 0xFE00, 0x7C01, 0x7C00, 0xFC00),
    "bfloat16": (0x3F80, 0x7FC0, 0xFFC0, 0x7F81, 0x7F80, 0xFF80),
    "float8_e4m3fn": (0x38, 0x7F, 0xFF, 0x7F, None, None),
    "float8_e5m2": (0x3C, 0x7E, 0xFE, 0x7D, 0x7C, 0xFC),
    # fnuz: one NaN, the pattern of -0; e8m0fnu: unsigned, one NaN, all ones
    "float8_e4m3fnuz": (0x40, 0x80, 0x80, 0x80, None, None),
    "float8_e5m2fnuz": (0x40, 0x80, 0x80, 0x80, None, None),
    "float8_e8m0fnu": (0x7F, 0xFF, 0xFF, 0xFF, None, None),
}
TEXT = {
    "null": {"nan": "null", "inf": "null", "-inf": "null"},
    "string": {"nan": '"NaN"', "inf": '"Infinity"', "-inf": '"-Infinity"'},
    "literal": {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"},
}
FORMATS = ["exact", "shortest"]


def case(dtype):
    """(bits array, expected kinds): 1.0 and every non-finite kind of the format."""
    one, nan, neg_nan, payload, inf, neg_inf = PATTERNS[dtype]
    items = [(one, "1.0"), (nan, "nan"), (one, "1.0"), (neg_nan, "nan"), (payload, "nan")]
    if inf is not None:
        items += [(inf, "inf"), (neg_inf, "-inf")]
    items.append((one, "1.0"))
    bits = np.array([b for b, _ in items], dtype=BITS[dtype])
    return bits, [k for _, k in items]


@pytest.mark.parametrize("float_format", FORMATS)
@pytest.mark.parametrize("policy", ["null", "string", "literal"])
@pytest.mark.parametrize("dtype", sorted(PATTERNS))
def test_policy_text(format_chunk, dtype, policy, float_format):
    bits, kinds = case(dtype)
    out = format_chunk(bits, dtype, (len(bits),), 0, len(bits), float_format, policy)
    expected = "[" + ",".join(TEXT[policy].get(k, k) for k in kinds) + "]"
    assert out.decode() == expected
    if policy != "literal":
        assert json.loads(out)[0] == 1.0          # still JSON
    else:                                         # what Python's json module writes
        values = [float(k) for k in kinds]
        assert out.decode() == json.dumps(values, separators=(",", ":"))


@pytest.mark.parametrize("float_format", FORMATS)
@pytest.mark.parametrize("dtype", sorted(PATTERNS))
def test_error_names_the_first_index_in_the_tensor(format_chunk, dtype, float_format):
    bits, kinds = case(dtype)
    n = len(bits)
    shape = (2, n)            # the chunk is the tensor's second row: indices n .. 2n-1
    with pytest.raises(NonFiniteError) as info:
        format_chunk(bits, dtype, shape, n, n, float_format)
    assert info.value.index == n + kinds.index("nan")
    assert isinstance(info.value, FormatError) and isinstance(info.value, ValueError)
    # default policy is "error"
    with pytest.raises(NonFiniteError) as info:
        format_chunk(bits[2:], dtype, (n - 2,), 0, n - 2)
    assert info.value.index == 1
    # the finite prefix alone is fine
    assert format_chunk(bits[:1], dtype, shape, n, 1, float_format) == b"],[1.0"


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16", "float8_e5m2"])
def test_error_for_infinity_alone(format_chunk, dtype):
    inf, neg_inf = PATTERNS[dtype][4:]
    one = PATTERNS[dtype][0]
    for pattern in (inf, neg_inf):
        bits = np.array([one, one, one, pattern], dtype=BITS[dtype])
        with pytest.raises(NonFiniteError) as info:
            format_chunk(bits, dtype, (4,), 0, 4)
        assert info.value.index == 3


@pytest.mark.parametrize("float_format", FORMATS)
def test_float8_e4m3fn_top_binade_is_finite(format_chunk, float_format):
    # exponent all ones is a normal binade in e4m3fn: 256 .. 448; only 0x7f / 0xff are NaN
    bits = np.array([0x78, 0x79, 0x7A, 0x7B, 0x7C, 0x7D, 0x7E, 0xFE], dtype=np.uint8)
    out = format_chunk(bits, "float8_e4m3fn", (8,), 0, 8, float_format)
    values = json.loads(out)
    assert values[0] > 0 and values[-1] < 0
    if float_format == "exact":
        assert values == [256.0, 288.0, 320.0, 352.0, 384.0, 416.0, 448.0, -448.0]
    assert all(math.isfinite(v) for v in values)


@pytest.mark.parametrize("dtype", sorted(PATTERNS))
def test_ints_and_bools_never_nonfinite(format_chunk, dtype):
    # the same bytes read as integers are plain numbers under the error policy
    bits, _ = case(dtype)
    raw = bits.view(np.uint8)
    out = format_chunk(raw, "uint8", (len(raw),), 0, len(raw))
    assert json.loads(out) == raw.tolist()
