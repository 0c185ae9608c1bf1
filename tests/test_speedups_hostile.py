"""The C core under hostile calls: every bad argument is a Python exception, never a crash.

These run against streamexport._speedups directly (the pure-Python twin has its own tests);
CI also runs them on a build with AddressSanitizer and UBSan, where an out-of-bounds read or
write, or undefined arithmetic on a huge shape, aborts the run instead of passing silently:

    STREAMEXPORT_SANITIZE=1 python setup.py build_ext --inplace --force
    LD_PRELOAD=$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0 \
        python -m pytest -q tests/test_speedups_hostile.py
"""
import array
import json
import random
import threading
import time

import numpy as np
import pytest

from streamexport.errors import (
    BufferSizeError, NonFiniteError, ShapeError, UnsupportedDtypeError,
)
from streamexport.formatter import DTYPES, ITEMSIZE

_speedups = pytest.importorskip("streamexport._speedups", reason="the C core is not built")
format_chunk = _speedups.format_chunk

SEED = 20261129


@pytest.mark.parametrize("dtype", DTYPES)
def test_buffer_length_off_by_one_either_way(dtype):
    size = ITEMSIZE[dtype]
    for count in (0, 1, 5):
        for nbytes in (count * size - 1, count * size + 1, count * size + size):
            if nbytes < 0:
                continue
            with pytest.raises(BufferSizeError):
                format_chunk(b"\x00" * nbytes, dtype, (5,), 0, count)


def test_count_times_itemsize_overflow():
    # count * 8 wraps around 2**64: must not be taken for a match with a short buffer
    with pytest.raises((BufferSizeError, ShapeError)):
        format_chunk(b"", "float64", (2 ** 62,), 0, 2 ** 61)


@pytest.mark.parametrize("offset", [1, 2, 3, 5, 7])
def test_misaligned_buffers_are_read_correctly(offset):
    values = np.array([0.1, -2.5, 1e-300, 3e300, 5e-324], dtype=np.float64)
    raw = bytearray(offset) + bytearray(values.tobytes())
    view = memoryview(raw)[offset:]
    assert format_chunk(view, "float64", (5,), 0, 5) == json.dumps(values.tolist(), separators=(",", ":")).encode()
    i64 = np.array([-2 ** 63, 2 ** 63 - 1, 0], dtype=np.int64)
    raw = bytearray(offset) + bytearray(i64.tobytes())
    assert format_chunk(memoryview(raw)[offset:], "int64", (3,), 0, 3) == b"[-9223372036854775808,9223372036854775807,0]"


def test_non_contiguous_memoryview_slices_are_refused():
    raw = memoryview(np.arange(8, dtype=np.int32).tobytes()).cast("i")
    with pytest.raises(BufferSizeError):
        format_chunk(raw[::2], "int32", (4,), 0, 4)
    fortran = np.asfortranarray(np.arange(6, dtype=np.int8).reshape(2, 3))
    with pytest.raises(BufferSizeError):
        format_chunk(fortran, "int8", (6,), 0, 6)


def test_multidimensional_and_typed_buffers_count_bytes():
    # the length is in bytes, whatever the exporter's own item size or shape
    ints = array.array("i", [1, 2, 3])
    assert format_chunk(ints, "int32", (3,), 0, 3) == b"[1,2,3]"
    with pytest.raises(BufferSizeError):
        format_chunk(ints, "int8", (3,), 0, 3)
    grid = np.arange(6, dtype=np.int16).reshape(2, 3)
    assert format_chunk(grid, "int16", (2, 3), 0, 6) == b"[[0,1,2],[3,4,5]]"


def test_non_buffers_are_type_errors():
    for data in (None, 3, "abc", [1, 2], object()):
        with pytest.raises(TypeError):
            format_chunk(data, "int8", (3,), 0, 3)


@pytest.mark.parametrize("shape", [
    (2 ** 32, 2 ** 32), (2 ** 62, 2), (2 ** 63 - 1, 2), (3, 2 ** 62), (2 ** 21,) * 3,
    (2 ** 63,), (2 ** 64,), (-(2 ** 63) - 1,), (10 ** 30,),
])
def test_shapes_whose_product_overflows(shape):
    with pytest.raises(ShapeError):
        format_chunk(b"", "int8", shape, 0, 0)


def test_huge_empty_shapes():
    # product 0 despite huge other dims: a valid empty tensor, but its nested lists
    # would be astronomically long -- MemoryError, not a wrapped size and a heap overflow
    with pytest.raises(MemoryError):
        format_chunk(b"", "int8", (2 ** 62, 2 ** 62, 0), 0, 0)
    with pytest.raises(MemoryError):
        format_chunk(b"", "int8", (2 ** 40, 2 ** 40, 2 ** 40, 0), 0, 0)
    with pytest.raises(MemoryError):
        format_chunk(b"", "int8", (2 ** 62, 0), 0, 0)


@pytest.mark.parametrize("shape,start,count", [
    ((4,), -1, 1), ((4,), 0, -1), ((4,), 5, 0), ((4,), 4, 1), ((4,), 2 ** 63 - 1, 1),
    ((4,), 2 ** 63, 0), ((4,), -(2 ** 64), 0), ((2 ** 62, 2), 0, 2 ** 63 - 1),
    ((0,), 0, 1), ((3, 0), 1, 0), ((), 2, 0), ((), 0, 2),
])
def test_ranges_outside_the_tensor(shape, start, count):
    with pytest.raises(ShapeError):
        format_chunk(b"\x00" * min(max(count, 0), 8), "int8", shape, start, count)


@pytest.mark.parametrize("shape", [(0,), (5, 0), (0, 5), (1, 0, 1), (3, 2, 0, 7), (1,) * 40 + (0,)])
def test_zero_size_dimensions(shape):
    expected = json.dumps(np.zeros(shape).tolist(), separators=(",", ":")).encode()
    assert format_chunk(b"", "float32", shape, 0, 0) == expected
    assert format_chunk(bytearray(), "bool", list(shape), 0, 0) == expected


def test_deep_shapes():
    shape = (1,) * 200 + (2,)
    out = format_chunk(np.array([1, 2], np.int8), "int8", shape, 0, 2)
    assert out == b"[" * 201 + b"1,2" + b"]" * 201
    shape = (2,) + (1,) * 200
    assert format_chunk(np.array([3], np.int8), "int8", shape, 1, 1) == b"]" * 200 + b"," + b"[" * 200 + b"3" + b"]" * 201


def test_bad_shape_types():
    for shape in (None, 3, (1.5,), ("2",), ({},)):
        with pytest.raises(TypeError):
            format_chunk(b"\x00", "int8", shape, 0, 1)
    with pytest.raises(TypeError):
        format_chunk(b"\x00", "int8", (1,), 0.0, 1)
    with pytest.raises(TypeError):
        format_chunk(b"\x00", "int8", (1,), 0, "1")
    # numpy integers are ints
    assert format_chunk(b"\x05", "int8", (np.int64(1),), np.int32(0), np.uint8(1)) == b"[5]"


@pytest.mark.parametrize("kw", [
    {"float_format": "Exact"}, {"float_format": ""}, {"float_format": None}, {"float_format": 1},
    {"float_format": b"exact"}, {"float_format": "exact\x00"}, {"nonfinite": "ignore"},
    {"nonfinite": None}, {"nonfinite": "null "}, {"nonfinite": "\udcff"},
])
def test_bad_option_strings(kw):
    with pytest.raises(ValueError):
        format_chunk(b"\x00" * 4, "float32", (1,), 0, 1, **kw)


def test_bad_dtypes():
    for dtype in (None, 1, b"float32", "float32\x00", "\udcff", "complex128", "uint128"):
        with pytest.raises(UnsupportedDtypeError):
            format_chunk(b"\x00" * 8, dtype, (1,), 0, 1)


def test_wrong_argument_counts():
    with pytest.raises(TypeError):
        format_chunk(b"", "int8", (0,), 0)
    with pytest.raises(TypeError):
        format_chunk(b"", "int8", (0,), 0, 0, "exact", "error", "extra")
    with pytest.raises(TypeError):
        format_chunk(b"", "int8", (0,), 0, 0, bogus=1)


def test_nonfinite_error_names_flat_index_of_chunk_element():
    values = np.array([1.0, 2.0, np.inf, np.nan], dtype=np.float32)
    with pytest.raises(NonFiniteError) as info:
        format_chunk(values, "float32", (3, 4), 6, 4)
    assert info.value.index == 8
    assert "inf" in str(info.value)
    bf16_nan = np.array([0x3F80, 0x7FC1], dtype=np.uint16)
    with pytest.raises(NonFiniteError) as info:
        format_chunk(bf16_nan, "bfloat16", (10,), 3, 2, float_format="shortest")
    assert info.value.index == 4


def test_random_garbage_never_crashes():
    """Random bytes as every dtype, random shapes and ranges: valid calls give text that
    parses as JSON numbers, invalid ones raise our exceptions."""
    rng = random.Random(SEED)
    for trial in range(400):
        dtype = rng.choice(DTYPES)
        ndim = rng.randrange(0, 4)
        shape = tuple(rng.choice([0, 1, 2, 3, 5]) for _ in range(ndim))
        total = int(np.prod(shape)) if shape else 1
        start = rng.randrange(0, total + 2)
        count = rng.randrange(0, total + 2)
        nbytes = count * ITEMSIZE[dtype] + rng.choice([0, 0, 0, -1, 1])
        data = bytes(rng.getrandbits(8) for _ in range(max(nbytes, 0)))
        mode = rng.choice(["exact", "shortest"])
        try:
            out = format_chunk(data, dtype, shape, start, count, float_format=mode, nonfinite="null")
        except (BufferSizeError, ShapeError):
            continue
        assert isinstance(out, bytes), (SEED, trial)
        if start == 0 and count == total:
            json.loads(out)  # a whole tensor is a whole JSON document


def test_a_large_chunk_lets_other_threads_run_and_a_small_one_keeps_the_gil():
    """Formatting a large chunk releases the GIL: a Python thread keeps counting meanwhile.
    A small one (under 4,096 elements) holds it: releasing costs more than it lets run."""
    counted = [0]
    stop = threading.Event()

    def count():
        while not stop.is_set():
            counted[0] += 1

    large = np.random.default_rng(SEED).normal(0, 0.02, 8_000_000).astype(np.float32)
    small = large[:4000]
    counter = threading.Thread(target=count)
    counter.start()
    try:
        while counted[0] == 0:      # the counter is running
            time.sleep(0.001)
        during = {}
        for name, array in (("large", large), ("small", small)):
            repeats = 1 if name == "large" else 100     # ~60 ms of work, or ~3 ms
            before = counted[0]
            for _ in range(repeats):
                format_chunk(array, "float32", (len(array),), 0, len(array))
            during[name] = counted[0] - before
    finally:
        stop.set()
        counter.join()
    assert during["large"] > 1000, during      # ~60 ms of the other thread's loop
    assert during["small"] < during["large"], during


def test_threads_share_nothing():
    """Several threads format at once with the GIL released; each gets its own bytes."""
    rng = np.random.default_rng(SEED)
    arrays = [rng.normal(0, 0.02, 50_000).astype(np.float32) for _ in range(4)]
    expected = [format_chunk(a, "float32", (len(a),), 0, len(a)) for a in arrays]
    results = [None] * 4

    def work(i):
        for _ in range(5):
            results[i] = format_chunk(arrays[i], "float32", (len(arrays[i]),), 0, len(arrays[i]))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == expected


# ---- format_into: the same text, written into a caller's buffer ------------------------

format_into = _speedups.format_into
chunk_capacity = _speedups.chunk_capacity


def test_format_into_writes_what_format_chunk_returns_into_a_dirty_reused_buffer():
    """One buffer, filled with junk, reused for chunks of falling and rising sizes."""
    rng = random.Random(SEED)
    out = bytearray(b"\xff" * 16384)     # a 7 x 7 x 7 float chunk needs ~9 KB
    for trial in range(300):
        dtype = rng.choice(DTYPES)
        shape = tuple(rng.choice([1, 2, 3, 7]) for _ in range(rng.randrange(0, 4)))
        total = int(np.prod(shape)) if shape else 1
        start = rng.randrange(0, total + 1)
        count = rng.randrange(0, total - start + 1)
        data = bytes(rng.getrandbits(8) for _ in range(count * ITEMSIZE[dtype]))
        expected = format_chunk(data, dtype, shape, start, count, "shortest", "string")
        assert chunk_capacity(dtype, shape, start, count) >= len(expected), (SEED, trial)
        length = format_into(out, data, dtype, shape, start, count, "shortest", "string")
        assert bytes(out[:length]) == expected, (SEED, trial)


def test_format_into_refuses_a_buffer_one_byte_short_of_the_capacity():
    values = np.array([1.5, -2.25, 1e-300], dtype=np.float64)
    needed = chunk_capacity("float64", (3,), 0, 3)
    with pytest.raises(BufferSizeError):
        format_into(bytearray(needed - 1), values, "float64", (3,), 0, 3)
    out = bytearray(needed)
    assert out[:format_into(out, values, "float64", (3,), 0, 3)] == b"[1.5,-2.25,1e-300]"


def test_format_into_refuses_read_only_and_strided_outputs():
    values = np.array([1, 2], dtype=np.int8)
    needed = chunk_capacity("int8", (2,), 0, 2)
    with pytest.raises(BufferError):
        format_into(bytes(needed), values, "int8", (2,), 0, 2)
    strided = memoryview(bytearray(2 * needed))[::2]
    with pytest.raises(BufferError):
        format_into(strided, values, "int8", (2,), 0, 2)
    for out in (None, 3, "abc"):
        with pytest.raises(TypeError):
            format_into(out, values, "int8", (2,), 0, 2)


def test_format_into_checks_its_arguments_in_the_contract_order():
    values = np.array([1, 2], dtype=np.int8)
    with pytest.raises(UnsupportedDtypeError):
        format_into(bytearray(64), values, "complex64", (2,), 0, 2)
    with pytest.raises(ShapeError):
        format_into(bytearray(64), values, "int8", (2,), 1, 2)
    with pytest.raises(BufferSizeError):      # the data buffer, before the output's size
        format_into(bytearray(0), values, "int16", (2,), 0, 2)
    with pytest.raises(ShapeError):
        chunk_capacity("int8", (-1,), 0, 0)
    with pytest.raises(MemoryError):
        chunk_capacity("int8", (2 ** 62, 0), 0, 0)


def test_format_into_holds_the_buffer_so_it_cannot_be_resized_meanwhile():
    out = bytearray(chunk_capacity("float32", (1,), 0, 1))
    view = memoryview(out)
    with pytest.raises(BufferError):
        out.extend(b"x")          # sanity: an exported bytearray cannot grow
    view.release()
    format_into(out, np.array([0.5], dtype=np.float32), "float32", (1,), 0, 1)
    out.extend(b"x")              # and format_into gave its export back


def test_format_into_reports_nonfinite_values_with_their_index():
    values = np.array([1.0, np.inf, 2.0], dtype=np.float32)
    with pytest.raises(NonFiniteError) as raised:
        format_into(bytearray(256), values, "float32", (9,), 4, 3)
    assert raised.value.index == 5


@pytest.mark.parametrize("shape,start,count,words", [
    ((3, -2), 0, 0, "negative dimension -2 in shape"),
    ((2 ** 62, 4), 0, 0, "shape has more than 2**63 - 1 elements"),
    ((-1, 2 ** 62, 4), 0, 0, "negative dimension -1 in shape"),
    ((2, 2), 3, 2, "range [3, 3 + 2) is outside a tensor of 4 elements"),
    ((2 ** 62, 0), 0, 1, "range [0, 0 + 1) is outside a tensor of 0 elements"),
])
def test_shape_errors_say_which_rule_is_broken(shape, start, count, words):
    with pytest.raises(ShapeError) as raised:
        format_chunk(b"\x00" * count, "int8", shape, start, count)
    assert str(raised.value) == words
