"""Property test (issue 7, item 3): the C core and the pure-Python twin agree on any call.

Hypothesis draws a dtype, a shape (0-d, empty and size-1 dimensions included), a chunk of it,
the element bytes (raw bit patterns, so NaNs, infinities and subnormals of every format come
up, or floats of the element's own width), both float formats and every non-finite policy,
and sometimes a fault (a wrong buffer length, a range past the end, a negative dimension, an
unknown dtype or policy). Both implementations must return the same bytes or raise the same
exception class (with the same index for NonFiniteError). The run is derandomized: the same
examples every time.
"""
import math
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamexport import _native
from streamexport.errors import NonFiniteError
from streamexport.formatter import DTYPES, FLOAT_FORMATS, ITEMSIZE, NONFINITE_POLICIES

try:
    from streamexport import _speedups
except ImportError:
    _speedups = None

pytestmark = pytest.mark.skipif(_speedups is None, reason="the C core is not built")

NATIVE_FLOATS = {"float64": ("d", 64), "float32": ("f", 32), "float16": ("e", 16)}
UINT_CODE = {1: "B", 2: "H", 4: "I", 8: "Q"}


def _specials(width, exponent_bits, ieee=True):
    """Bit patterns worth meeting: zeros, NaNs, infinities, extremes, subnormal edges."""
    mantissa_bits = width - 1 - exponent_bits
    sign = 1 << (width - 1)
    top = ((1 << exponent_bits) - 1) << mantissa_bits
    ones = (1 << mantissa_bits) - 1
    patterns = [0, 1, ones, ones + 1, top - 1 if ieee else top | (ones - 1), top | ones]
    if ieee:
        patterns += [top, top | 1, top | (1 << (mantissa_bits - 1))]
    return patterns + [p | sign for p in patterns]


SPECIAL = {"float64": _specials(64, 11), "float32": _specials(32, 8),
           "float16": _specials(16, 5), "bfloat16": _specials(16, 8),
           "float8_e4m3fn": _specials(8, 4, ieee=False), "float8_e5m2": _specials(8, 5),
           "int64": [2 ** 63, 2 ** 63 - 1, 0, 2 ** 64 - 1], "int8": [128, 127, 255],
           "bool": [0, 1, 2, 255]}
FAULTS = ["none"] * 6 + ["short", "long", "past_end", "negative_dim", "dtype", "policy",
                         "float_format"]


@st.composite
def calls(draw):
    dtype = draw(st.sampled_from(DTYPES))
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=0, max_size=4)))
    total = math.prod(shape)
    if total == 0:
        start = count = 0
    else:
        start = draw(st.integers(0, total - 1))
        count = draw(st.integers(1, total - start))
    size = ITEMSIZE[dtype]
    source = draw(st.sampled_from(["bytes", "floats", "special"]))
    if source == "floats" and dtype in NATIVE_FLOATS:
        code, width = NATIVE_FLOATS[dtype]
        values = draw(st.lists(st.floats(width=width), min_size=count, max_size=count))
        data = struct.pack("=%d%s" % (count, code), *values)
    elif source == "special" and dtype in SPECIAL:
        code = UINT_CODE[size]
        patterns = st.one_of(st.sampled_from(SPECIAL[dtype]), st.integers(0, 2 ** (8 * size) - 1))
        values = draw(st.lists(patterns, min_size=count, max_size=count))
        data = struct.pack("=%d%s" % (count, code), *values)
    else:
        data = draw(st.binary(min_size=count * size, max_size=count * size))
    kwargs = {"float_format": draw(st.sampled_from(FLOAT_FORMATS)),
              "nonfinite": draw(st.sampled_from(NONFINITE_POLICIES))}
    fault = draw(st.sampled_from(FAULTS))
    if fault == "short":
        data = data[:-1] if data else b"\x00"
    elif fault == "long":
        data += b"\x01"
    elif fault == "past_end":
        start = total + draw(st.integers(0, 3))
        count = max(count, 1)
    elif fault == "negative_dim":
        shape = shape + (-draw(st.integers(1, 3)),)
    elif fault == "dtype":
        dtype = draw(st.sampled_from(["complex64", "float", "int", "uint128", "", "FLOAT32"]))
    elif fault == "policy":
        kwargs["nonfinite"] = draw(st.sampled_from(["ignore", "NULL", "", "allow"]))
    elif fault == "float_format":
        kwargs["float_format"] = draw(st.sampled_from(["repr", "Shortest", ""]))
    return (bytearray(data), dtype, shape, start, count), kwargs


def outcome(function, args, kwargs):
    try:
        return "ok", function(*args, **kwargs)
    except NonFiniteError as error:
        return NonFiniteError, error.index
    except Exception as error:      # the class is what must agree
        return type(error), None


@settings(derandomize=True, max_examples=600, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(calls())
def test_c_core_agrees_with_twin(call):
    args, kwargs = call
    c = outcome(_speedups.format_chunk, args, kwargs)
    python = outcome(_native.format_chunk, args, kwargs)
    assert c == python, (args, kwargs)


@settings(derandomize=True, max_examples=200, deadline=None, database=None)
@given(calls())
def test_chunks_concatenate_in_both(call):
    # whatever the split, consecutive chunks of a valid tensor concatenate to the whole
    (data, dtype, shape, start, count), kwargs = call
    total = math.prod(shape)
    if (dtype not in ITEMSIZE or any(d < 0 for d in shape) or total == 0
            or len(data) != count * ITEMSIZE[dtype] or start + count > total
            or kwargs["float_format"] not in FLOAT_FORMATS
            or kwargs["nonfinite"] not in NONFINITE_POLICIES):
        return
    kwargs["nonfinite"] = "string" if kwargs["nonfinite"] == "error" else kwargs["nonfinite"]
    size = ITEMSIZE[dtype]
    buffer = bytes(data) * (total // max(count, 1) + 1)
    buffer = buffer[:total * size]
    whole = _speedups.format_chunk(buffer, dtype, shape, 0, total, **kwargs)
    assert whole == _native.format_chunk(buffer, dtype, shape, 0, total, **kwargs)
    cut = [0, start, start + count, total]
    pieces = [_speedups.format_chunk(buffer[a * size:b * size], dtype, shape, a, b - a, **kwargs)
              for a, b in zip(cut, cut[1:]) if b > a]
    assert b"".join(pieces) == whole
