"""Every bit pattern of float16, bfloat16 and the five float8 dtypes, in both modes.

exact:    the whole array's text equals ``json.dumps(t.tolist())`` (torch widens the values).
shortest: each token is an RFC 8259 number laid out like repr, rounds back (exactly, with
          rational arithmetic) to the same bits at the dtype, no decimal with fewer significant
          digits does, it is the closest such decimal (ties: half-to-even), and it is never
          longer than the exact token (which it is, where the fewest digits would be a power
          of ten padded with zeros in fixed notation, e.g. bfloat16 9984).

The checks here do not use the twin's shortest search; they use its ``round_to_bits`` (exact
rounding of a rational), which is itself tested below against numpy's and torch's conversions.
"""
import json
import math
import re
from fractions import Fraction

import numpy as np
import pytest
import torch

from streamexport import _native

try:
    from streamexport import _speedups
except ImportError:
    _speedups = None

NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
SMALL = {"float16": (torch.int16, 16), "bfloat16": (torch.int16, 16),
         "float8_e4m3fn": (torch.uint8, 8), "float8_e5m2": (torch.uint8, 8),
         "float8_e4m3fnuz": (torch.uint8, 8), "float8_e5m2fnuz": (torch.uint8, 8),
         "float8_e8m0fnu": (torch.uint8, 8)}


def all_patterns(dtype):
    """(numpy bits array, torch tensor of the values) for every pattern of dtype."""
    view, width = SMALL[dtype]
    bits = np.arange(2 ** width, dtype=np.uint16 if width == 16 else np.uint8)
    tensor = torch.from_numpy(bits.astype(np.int16) if width == 16 else bits).view(view)
    return bits, tensor.view(getattr(torch, dtype))


def decade(num, den):
    """j with 10**j <= num / den < 10**(j+1), for positive integers."""
    j = len(str(num)) - len(str(den))          # the answer or one more
    if (num >= 10 ** j * den) if j >= 0 else (num * 10 ** -j >= den):
        return j
    return j - 1


def significant_digits(token):
    mantissa = token.lstrip("-").split("e")[0].replace(".", "")
    return len(mantissa.strip("0")) or 1


def neighbours(num, den, unit):
    """The multiples of 10**unit just below and just above num / den, as Fractions."""
    if unit >= 0:
        below = num // (den * 10 ** unit)
        return [Fraction(c * 10 ** unit) for c in (below, below + 1)]
    below = num * 10 ** -unit // den
    return [Fraction(c, 10 ** -unit) for c in (below, below + 1)]


_checked = {}


def check_shortest(token, bits, value, dtype):
    """Assert the shortest-mode contract for one finite element; ``value`` is its float."""
    key = (dtype, token, bits)
    if key in _checked:
        return
    assert NUMBER.fullmatch(token), token
    digits = significant_digits(token)
    assert digits <= 15
    assert repr(float(token)) == token, "not laid out like repr"   # exact for <= 15 digits
    negative = token.startswith("-")
    assert negative == (math.copysign(1.0, value) < 0)
    assert _native.round_to_bits(Fraction(token), dtype, negative=negative) == bits, \
        "does not round back"
    exact = repr(value)
    assert len(token) <= len(exact), ("longer than the exact token", exact)
    if token == exact and len(_native.fewest_digits_token(bits, dtype)) > len(exact):
        # The fewest digits are a power of ten that fixed notation pads with zeros
        # (bfloat16 9984: "10000.0"); the exact token is the shorter text, so it is the one.
        assert re.fullmatch(r"-?10+\.0", _native.fewest_digits_token(bits, dtype))
        _checked[key] = True
        return
    x = abs(Fraction(value))
    if x == 0:
        assert token.lstrip("-") == "0.0"
        _checked[key] = True
        return
    magnitude = _native.round_to_bits(x, dtype)
    num, den = x.numerator, x.denominator
    # no decimal with fewer significant digits rounds back: the nearest ones on each side,
    # multiples of 10**(d - digits + 2) where 10**d <= x < 10**(d+1), do not
    if digits > 1:
        for q in neighbours(num, den, decade(num, den) - digits + 2):
            assert q == 0 or _native.round_to_bits(q, dtype) != magnitude, ("shorter", q)
    # the closest decimal with this many digits that rounds back (ties: half-to-even)
    unit = decade(num, den) - digits + 1
    candidates = [q for q in neighbours(num, den, unit)
                  if q and _native.round_to_bits(q, dtype) == magnitude]
    best = min(abs(q - x) for q in candidates)
    closest = [q for q in candidates if abs(q - x) == best]
    if len(closest) > 1:
        closest = [_native._round_half_even(x / Fraction(10) ** unit) * Fraction(10) ** unit]
    assert abs(Fraction(token)) == closest[0], ("not the closest", closest[0])
    _checked[key] = True


@pytest.mark.parametrize("dtype", sorted(SMALL))
def test_every_pattern_exact_is_repr(format_chunk, dtype):
    bits, values = all_patterns(dtype)
    out = format_chunk(bits, dtype, (len(bits),), 0, len(bits), "exact", "literal")
    assert out == json.dumps(values.tolist(), separators=(",", ":")).encode()


def twin_sample(request, format_chunk, bits, values):
    """The twin's shortest search is slow (~100 us a pattern): without --slow it checks
    every 13th 16-bit pattern (its full agreement with the C core is a --slow test)."""
    if (format_chunk is _native.format_chunk and len(bits) > 256
            and not request.config.getoption("--slow")):
        return bits[::13].copy(), values[::13]
    return bits, values


@pytest.mark.parametrize("dtype", sorted(SMALL))
def test_every_pattern_shortest_round_trips(request, format_chunk, dtype):
    bits, values = twin_sample(request, format_chunk, *all_patterns(dtype))
    out = format_chunk(bits, dtype, (len(bits),), 0, len(bits), "shortest", "literal")
    assert out.startswith(b"[") and out.endswith(b"]")
    tokens = out[1:-1].decode().split(",")
    floats = values.tolist()
    assert len(tokens) == len(floats)
    fmt = _native.FORMATS[dtype]
    sign_bit = 1 << (fmt.width - 1) if fmt.signed else 0       # float8_e8m0fnu has none
    positive = dict(zip(bits.tolist(), tokens))
    for pattern, token, value in zip(bits.tolist(), tokens, floats):
        if not math.isfinite(value):
            assert token == json.dumps(value), (hex(pattern), token)
        elif pattern & sign_bit and pattern ^ sign_bit in positive:
            # a negative value: the positive one's token with "-" (checked on its own)
            assert token == "-" + positive[pattern ^ sign_bit], hex(pattern)
        else:
            check_shortest(token, pattern, value, dtype)


@pytest.mark.skipif(_speedups is None, reason="the C core is not built")
@pytest.mark.parametrize("float_format", ["exact", "shortest"])
@pytest.mark.parametrize("dtype", sorted(SMALL))
def test_every_pattern_c_equals_twin(request, dtype, float_format):
    bits, values = all_patterns(dtype)
    if float_format == "shortest":
        bits, _ = twin_sample(request, _native.format_chunk, bits, values)
    args = (bits, dtype, (len(bits),), 0, len(bits), float_format, "string")
    assert _speedups.format_chunk(*args) == _native.format_chunk(*args)


# ---- the twin's own helpers against independent conversions -----------------------------

@pytest.mark.parametrize("dtype", sorted(SMALL))
def test_twin_decode_matches_torch(dtype):
    bits, values = all_patterns(dtype)
    for pattern, value in zip(bits.tolist(), values.tolist()):
        mine = _native.decode(pattern, dtype)
        if math.isnan(value):
            assert math.isnan(mine), hex(pattern)
        else:
            assert mine == value and math.copysign(1, mine) == math.copysign(1, value), hex(pattern)


def test_twin_decode_float16_matches_numpy():
    bits = np.arange(2 ** 16, dtype=np.uint16)
    for pattern, value in zip(bits.tolist(), bits.view(np.float16).astype(np.float64).tolist()):
        mine = _native.decode(pattern, "float16")
        assert (math.isnan(mine) and math.isnan(value)) or (
            mine == value and math.copysign(1, mine) == math.copysign(1, value)), hex(pattern)


def _midpoints_and_neighbours(dtype):
    """As float32: every value, every midpoint of two neighbours and the float32 numbers
    next to each midpoint, the overflow threshold (max + ulp/2) and its neighbours, and
    values far past it; both signs."""
    bits, values = all_patterns(dtype)
    v = values.to(torch.float64)
    v = v[torch.isfinite(v) & (v >= 0)].unique()          # sorted non-negative values
    mids = (v[1:] + v[:-1]) / 2
    top = v[-1:] + (v[-1:] - v[-2:-1]) / 2                 # max + half ulp
    base = torch.cat([v, mids, top, v[-1:] * 1.5, torch.tensor([2.0 ** 100])])
    base = base[base < 2.0 ** 128]
    base32 = base.to(torch.float32)
    assert torch.equal(base32.to(torch.float64), base), "not exact in float32"
    points = torch.cat([base32, torch.nextafter(base32, torch.tensor(math.inf)),
                        torch.nextafter(base32, torch.tensor(0.0))])
    return torch.cat([points, -points])


@pytest.mark.parametrize("dtype", ["bfloat16", "float8_e4m3fn", "float8_e5m2", "float16",
                                   "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu"])
def test_twin_round_to_bits_matches_torch_from_float32(request, dtype):
    # torch converts float32 to these formats with one round-to-nearest-even step
    points = _midpoints_and_neighbours(dtype)
    if not request.config.getoption("--slow"):
        points = points[::5]              # every 5th point without --slow (~20,000 of 100,000)
    if dtype == "float8_e4m3fn":
        # torch saturates out-of-range values (even infinity) to +-448; the contract rounds
        # like IEEE with NaN for overflow (see test_e4m3fn_overflow_threshold_is_ties_to_even)
        points = points[points.abs() <= 464]
    if dtype == "float8_e8m0fnu":
        # No sign: torch drops a negative one's, the twin says NaN. And torch rounds a float32
        # subnormal (below 2**-126) as if its binade started at 0, so that 2**-127 * (1 + 2**-20)
        # becomes 2**-126; the twin rounds its value, to 2**-127.
        points = points[points >= 2.0 ** -126]
    view = SMALL[dtype][0]
    expected = points.to(getattr(torch, dtype)).view(view).tolist()
    mask = (1 << SMALL[dtype][1]) - 1
    for point, want in zip(points.tolist(), expected):
        want &= mask
        got = _native.round_to_bits(Fraction(point), dtype, negative=math.copysign(1, point) < 0)
        fmt = _native.FORMATS[dtype]
        if fmt.classify(want) == "nan":
            assert fmt.classify(got) == "nan", (point, hex(got))
        else:
            assert got == want, (point, hex(got), hex(want))


def test_twin_round_to_bits_matches_numpy_float32_and_float16():
    # numpy rounds float64 -> float32 and float64 -> float16 correctly (one rounding step)
    rng = np.random.default_rng(20261129)
    doubles = rng.integers(0, 2 ** 64, 20000, dtype=np.uint64, endpoint=False).view(np.float64)
    near32 = rng.standard_normal(20000) * 2.0 ** rng.integers(-160, 130, 20000)
    near16 = rng.standard_normal(20000) * 2.0 ** rng.integers(-28, 18, 20000)
    with np.errstate(over="ignore"):
        for dtype, np_dtype, bit_type, samples in (
                ("float32", np.float32, np.uint32, np.concatenate([doubles, near32])),
                ("float16", np.float16, np.uint16, near16)):
            samples = samples[np.isfinite(samples)]
            expected = samples.astype(np_dtype).view(bit_type).tolist()
            for value, want in zip(samples.tolist(), expected):
                got = _native.round_to_bits(Fraction(value), dtype, negative=value < 0)
                assert got == want, (dtype, value.hex(), hex(got), hex(want))


def test_twin_shortest_float64_is_repr():
    # the twin's shortest search, run at float64, must reproduce Python's repr
    rng = np.random.default_rng(7)
    for pattern in rng.integers(0, 2 ** 64, 3000, dtype=np.uint64, endpoint=False).tolist():
        if _native.FORMATS["float64"].classify(pattern) == "finite":
            value = _native.decode(pattern, "float64")
            assert _native.shortest_token(pattern, "float64") == repr(value), value.hex()


def test_e4m3fn_overflow_threshold_is_ties_to_even():
    # 448 has an even significand: 464 = 448 + ulp/2 rounds to it; anything above is NaN
    assert _native.round_to_bits(Fraction(464), "float8_e4m3fn") == 0x7E
    assert _native.round_to_bits(Fraction(464) + Fraction(1, 2 ** 20), "float8_e4m3fn") == 0x7F
    assert _native.round_to_bits(Fraction(-465), "float8_e4m3fn") == 0xFF
    assert torch.tensor([464.0]).to(torch.float8_e4m3fn).view(torch.uint8).tolist() == [0x7E]
    # so the shortest token of 448 is 450.0 (464 is the top of its interval), not 500.0
    assert _native.shortest_token(0x7E, "float8_e4m3fn") == "450.0"
    assert _native.shortest_token(0xFE, "float8_e4m3fn") == "-450.0"
    # IEEE formats: max + ulp/2 overflows (max has an odd significand)
    assert _native.round_to_bits(Fraction(57344 + 4096), "float8_e5m2") == 0x7C
    assert _native.round_to_bits(Fraction(57344 + 4095), "float8_e5m2") == 0x7B
    assert _native.round_to_bits(Fraction(65520), "float16") == 0x7C00
    assert _native.round_to_bits(Fraction(65519), "float16") == 0x7BFF


def test_fnuz_and_e8m0_rounding_at_their_edges():
    # fnuz: max 240 (e4m3) and 57344 (e5m2) have odd significands, so max + ulp/2 is NaN,
    # whose pattern is that of -0: zero is always +0, a tiny negative value too
    for dtype, top, half_ulp in (("float8_e4m3fnuz", 240, 8), ("float8_e5m2fnuz", 57344, 4096)):
        assert _native.round_to_bits(Fraction(top + half_ulp) - Fraction(1, 2 ** 30), dtype) == 0x7F
        assert _native.round_to_bits(Fraction(top + half_ulp), dtype) == 0x80
        assert _native.round_to_bits(Fraction(-top - half_ulp), dtype) == 0x80
        assert _native.round_to_bits(Fraction(0), dtype, negative=True) == 0x00
        assert _native.round_to_bits(Fraction(-1, 2 ** 40), dtype) == 0x00
        assert _native.round_to_bits(Fraction(-top), dtype) == 0xFF
        assert _native.decode(0x80, dtype) != _native.decode(0x80, dtype)       # NaN
        assert torch.tensor([float(top + half_ulp), -1e-12]).to(getattr(torch, dtype)).view(
            torch.uint8).tolist() == [0x80, 0x00]
    assert _native.shortest_token(0x7F, "float8_e4m3fnuz") == "240.0"
    # e8m0: powers of two 2**-127 .. 2**127, no sign, no zero; 1.5 * 2**k is a tie that goes
    # to the even significand, up to 2**(k+1)
    e8m0 = "float8_e8m0fnu"
    assert [_native.round_to_bits(Fraction(x), e8m0) for x in (0.75, 1.49, 1.5, 3, 0)] == \
        [0x7F, 0x7F, 0x80, 0x81, 0x00]
    assert _native.round_to_bits(Fraction(3, 2) * 2 ** 127, e8m0) == 0xFF     # NaN
    assert _native.round_to_bits(Fraction(-1), e8m0) == 0xFF
    assert _native.decode(0x00, e8m0) == 2.0 ** -127 and _native.decode(0xFE, e8m0) == 2.0 ** 127
    assert [_native.shortest_token(b, e8m0) for b in (0x7F, 0x80, 0x00, 0xFE)] == \
        ["1.0", "2.0", "6e-39", "2e+38"]
