"""Formatter layout: brackets, separators, chunks, every dtype, argument validation.

The reference is the contract's own definition: ``json.dumps(t.tolist(), separators=(",", ":"))``.
Every test runs against the C core and the pure-Python twin (the ``format_chunk`` fixture).
"""
import json

import numpy as np
import pytest
import torch

from streamexport.errors import (
    BufferSizeError, FormatError, ShapeError, UnsupportedDtypeError,
)
from streamexport.formatter import DTYPES, ITEMSIZE

TORCH_DTYPE = {name: getattr(torch, name) for name in DTYPES}
BITS_VIEW = {"bfloat16": torch.int16, "float8_e4m3fn": torch.uint8, "float8_e5m2": torch.uint8,
             "float8_e4m3fnuz": torch.uint8, "float8_e5m2fnuz": torch.uint8,
             "float8_e8m0fnu": torch.uint8}


def buffer_of(t):
    """The formatter's input for a tensor: its elements, contiguous, bit patterns for the
    dtypes numpy lacks."""
    dtype = str(t.dtype).replace("torch.", "")
    flat = t.contiguous().reshape(-1)
    if dtype in BITS_VIEW:
        flat = flat.view(BITS_VIEW[dtype])
    return flat.numpy(), dtype


def whole(format_chunk, t, **kw):
    data, dtype = buffer_of(t)
    return format_chunk(data, dtype, tuple(t.shape), 0, t.numel(), **kw)


def dumps(t):
    return json.dumps(t.tolist(), separators=(",", ":")).encode()


SHAPES = [
    (), (1,), (7,), (1, 1), (1, 1, 1), (3, 1), (1, 3), (2, 3), (3, 2, 1), (1, 2, 1, 3, 1),
    (2, 3, 4), (3, 2, 1, 2, 2), (2, 1, 1, 2),
]
EMPTY_SHAPES = [(0,), (2, 0), (0, 3), (2, 3, 0), (2, 0, 3), (1, 0), (0, 0), (3, 1, 0, 2)]


@pytest.mark.parametrize("shape", SHAPES + EMPTY_SHAPES, ids=str)
def test_brackets_match_tolist(format_chunk, shape):
    t = torch.arange(int(np.prod(shape)), dtype=torch.int32).reshape(shape) - 3
    assert whole(format_chunk, t) == dumps(t)
    f = torch.randn(shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    assert whole(format_chunk, f) == dumps(f)


@pytest.mark.parametrize("shape", EMPTY_SHAPES, ids=str)
def test_empty_tensor_is_nested_empty_lists(format_chunk, shape):
    out = format_chunk(b"", "float32", shape, 0, 0)
    assert out == json.dumps(torch.empty(shape).tolist(), separators=(",", ":")).encode()
    assert out.startswith(b"[") and out.endswith(b"]") and b"," not in out.replace(b"],[", b"")


def test_zero_d_is_bare_token(format_chunk):
    assert format_chunk(np.array([2.5], np.float32), "float32", (), 0, 1) == b"2.5"
    assert format_chunk(np.array([-7], np.int64), "int64", (), 0, 1) == b"-7"
    assert format_chunk(np.array([1], np.uint8), "bool", (), 0, 1) == b"true"


@pytest.mark.parametrize("shape", [s for s in SHAPES if np.prod(s) > 1], ids=str)
def test_two_chunks_concatenate_to_whole(format_chunk, shape):
    t = torch.randn(shape, generator=torch.Generator().manual_seed(11))
    data, dtype = buffer_of(t)
    expected = dumps(t)
    n = t.numel()
    for split in range(1, n):
        head = format_chunk(data[:split], dtype, shape, 0, split)
        tail = format_chunk(data[split:], dtype, shape, split, n - split)
        assert head + tail == expected, split


def test_every_chunk_of_every_size_concatenates(format_chunk):
    shape = (2, 3, 4)
    t = torch.arange(24, dtype=torch.int16).reshape(shape)
    data, dtype = buffer_of(t)
    expected = dumps(t)
    for size in range(1, 25):
        pieces = [format_chunk(data[i:i + size], dtype, shape, i, len(data[i:i + size]))
                  for i in range(0, 24, size)]
        assert b"".join(pieces) == expected, size


def test_single_element_chunks_carry_separators(format_chunk):
    shape = (2, 2, 2)
    data = np.arange(8, dtype=np.int8)
    pieces = [format_chunk(data[i:i + 1], "int8", shape, i, 1) for i in range(8)]
    assert pieces == [b"[[[0", b",1", b"],[2", b",3", b"]],[[4", b",5", b"],[6", b",7]]]"]


def test_zero_count_chunk_of_nonempty_tensor_is_empty(format_chunk):
    # Brackets belong to elements: a chunk without elements writes nothing, wherever it is.
    data = np.arange(6, dtype=np.int32)
    for start in range(7):
        assert format_chunk(data[:0], "int32", (2, 3), start, 0) == b""


INT_EDGES = {
    "int8": [-128, 127, 0, -1, 1],
    "int16": [-2 ** 15, 2 ** 15 - 1, 0, -1, 1],
    "int32": [-2 ** 31, 2 ** 31 - 1, 0, -1, 1],
    "int64": [-2 ** 63, 2 ** 63 - 1, 0, -1, 1, 2 ** 53 + 1],
    "uint8": [0, 255, 1, 128, 127],
    "uint16": [0, 2 ** 16 - 1, 1, 2 ** 15, 2 ** 15 - 1],
    "uint32": [0, 2 ** 32 - 1, 1, 2 ** 31, 2 ** 31 - 1],
    "uint64": [0, 2 ** 64 - 1, 1, 2 ** 63, 2 ** 63 - 1, 10 ** 19, 10 ** 19 - 1],
}


@pytest.mark.parametrize("dtype", sorted(INT_EDGES))
@pytest.mark.parametrize("float_format", ["exact", "shortest"])
def test_integers_at_their_limits(format_chunk, dtype, float_format):
    t = torch.tensor(INT_EDGES[dtype], dtype=TORCH_DTYPE[dtype])
    assert whole(format_chunk, t, float_format=float_format) == dumps(t)
    assert dumps(t) == ("[" + ",".join(map(str, INT_EDGES[dtype])) + "]").encode()


@pytest.mark.parametrize("dtype", ["int64", "uint64", "uint32", "uint16"])
def test_integers_at_every_digit_count_and_at_random(format_chunk, dtype):
    # 10**k - 1 and 10**k for every k the dtype holds (the digit count changes there; uint64's
    # 20-digit numbers, from 10**19, are the only ones no signed dtype has), and random values
    # of every magnitude.
    info = np.iinfo(dtype)
    edges = [v for k in range(21) for v in (10 ** k - 1, 10 ** k, -10 ** k, 1 - 10 ** k)
             if info.min <= v <= info.max]
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2 ** 64, 50_000, dtype=np.uint64) >> rng.integers(
        0, 64, 50_000, dtype=np.uint64)
    values = np.concatenate([np.array(edges, dtype=dtype), bits.astype(dtype)])
    expected = ("[" + ",".join(map(str, values.tolist())) + "]").encode()
    assert format_chunk(values, dtype, values.shape, 0, values.size) == expected


@pytest.mark.parametrize("float_format", ["exact", "shortest"])
def test_bool(format_chunk, float_format):
    t = torch.tensor([[True, False], [False, True]])
    assert whole(format_chunk, t, float_format=float_format) == b"[[true,false],[false,true]]"
    # any non-zero byte is true
    raw = np.array([0, 1, 2, 255, 0x80], dtype=np.uint8)
    assert format_chunk(raw, "bool", (5,), 0, 5) == b"[false,true,true,true,true]"


FLOAT_DTYPES = ["float64", "float32", "float16", "bfloat16", "float8_e4m3fn", "float8_e5m2",
                "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu"]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_float_dtypes_exact_matches_tolist(format_chunk, dtype):
    values = [0.0, -0.0, 1.0, -1.5, 0.1, 3.0, 100.0, 1e-3, 0.02, -448.0, 240.0, 2.0 ** -9]
    g = torch.Generator().manual_seed(3)
    t = torch.cat([torch.tensor(values), torch.randn(200, generator=g) * 3]).to(TORCH_DTYPE[dtype])
    wide = t.to(torch.float32)
    t = torch.where(wide.isnan(), 1.0, wide).to(TORCH_DTYPE[dtype])   # out of the fnuz float8s' range
    assert whole(format_chunk, t.reshape(4, -1)) == dumps(t.reshape(4, -1))


@pytest.mark.parametrize("float_format", ["exact", "shortest"])
def test_float64_shortest_is_exact(format_chunk, float_format):
    t = torch.tensor([0.1, 1 / 3, 1e16, 1e-5, 5e-324, 1.7976931348623157e308, -0.0], dtype=torch.float64)
    assert whole(format_chunk, t, float_format=float_format) == dumps(t)


def test_shortest_float32_examples(format_chunk):
    t = torch.tensor([0.1, 1e-5, 1e16, 3.0, -0.0, 0.0, 16777216.0, 1e-45, 3.4028234663852886e38,
                      1.1754943508222875e-38, 0.3, 2.0 ** 24 + 2])
    out = whole(format_chunk, t, float_format="shortest")
    assert out == (b"[0.1,1e-05,1e+16,3.0,-0.0,0.0,16777216.0,1e-45,3.4028235e+38,"
                   b"1.1754944e-38,0.3,16777218.0]")


def test_accepts_any_buffer_object(format_chunk):
    arr = np.array([1.5, -2.25], dtype=np.float64)
    expected = b"[1.5,-2.25]"
    for data in (arr, arr.tobytes(), bytearray(arr.tobytes()), memoryview(arr.tobytes())):
        assert format_chunk(data, "float64", (2,), 0, 2) == expected


def test_misaligned_buffer(format_chunk):
    values = np.array([0.1, -3.5, 1e300], dtype=np.float64)
    raw = bytearray(b"\x00" + values.tobytes())
    view = np.frombuffer(raw, dtype=np.float64, offset=1)     # not 8-byte aligned
    assert format_chunk(view, "float64", (3,), 0, 3) == b"[0.1,-3.5,1e+300]"
    halves = np.frombuffer(bytes(b"\x00" + np.array([1.5], np.float16).tobytes()), np.float16, offset=1)
    assert format_chunk(halves, "float16", (1,), 0, 1) == b"[1.5]"


# ---- validation ------------------------------------------------------------------------

def test_unknown_dtype(format_chunk):
    for dtype in ("complex64", "float", "torch.float32", "", "Float32"):
        with pytest.raises(UnsupportedDtypeError):
            format_chunk(b"\x00" * 8, dtype, (1,), 0, 1)
    assert issubclass(UnsupportedDtypeError, FormatError)


@pytest.mark.parametrize("dtype", DTYPES)
def test_buffer_length_must_match(format_chunk, dtype):
    size = ITEMSIZE[dtype]
    for nbytes in (0, 3 * size - 1, 3 * size + 1, 4 * size):
        with pytest.raises(BufferSizeError):
            format_chunk(b"\x00" * nbytes, dtype, (3,), 0, 3)
    assert format_chunk(b"\x00" * (3 * size), dtype, (3,), 0, 3).startswith(b"[")


def test_shape_errors(format_chunk):
    with pytest.raises(ShapeError):
        format_chunk(b"", "int8", (2, -1), 0, 0)
    with pytest.raises(ShapeError):                          # 2**64 elements
        format_chunk(b"", "int8", (2 ** 32, 2 ** 32), 0, 0)
    with pytest.raises(ShapeError):                          # 2**63 elements
        format_chunk(b"", "int8", (2 ** 62, 2), 0, 0)
    with pytest.raises(ShapeError):                          # past the end
        format_chunk(b"\x00" * 4, "int8", (2, 2), 1, 4)
    with pytest.raises(ShapeError):
        format_chunk(b"\x00", "int8", (2, 2), 4, 1)
    with pytest.raises(ShapeError):
        format_chunk(b"\x00", "int8", (2, 2), -1, 1)
    with pytest.raises(ShapeError):                          # an empty tensor has no element 0
        format_chunk(b"\x00", "int8", (2, 0), 0, 1)
    with pytest.raises(ShapeError):
        format_chunk(b"", "int8", (0,), 1, 0)


def test_large_valid_shape_small_chunk(format_chunk):
    # A shape near the limit is fine; only the chunk's own elements are read.
    shape = (2 ** 31, 2 ** 31)
    last = 2 ** 62 - 1
    out = format_chunk(np.array([5], np.int8), "int8", shape, last, 1)
    assert out == b",5]]"
    assert format_chunk(np.array([6], np.int8), "int8", shape, 0, 1) == b"[[6"
    assert format_chunk(np.array([7], np.int8), "int8", shape, 2 ** 31, 1) == b"],[7"


def test_bad_policies(format_chunk):
    with pytest.raises(ValueError):
        format_chunk(b"\x00" * 4, "float32", (1,), 0, 1, float_format="short")
    with pytest.raises(ValueError):
        format_chunk(b"\x00" * 4, "float32", (1,), 0, 1, nonfinite="ignore")
    with pytest.raises(ValueError):
        format_chunk(b"\x00" * 4, "float32", (1,), 0, 1, float_format=None)


def test_non_contiguous_buffer_is_refused(format_chunk):
    strided = np.arange(10, dtype=np.int32)[::2]
    with pytest.raises(ValueError):                          # BufferSizeError is a ValueError
        format_chunk(strided, "int32", (5,), 0, 5)


def test_non_buffer_is_refused(format_chunk):
    with pytest.raises(TypeError):
        format_chunk([1, 2, 3], "int8", (3,), 0, 3)
