"""The C core's vector paths against its scalar path, byte for byte: AVX-512 (se_simd.c:
float32 in both modes and float64, eight lanes at a time) and AVX2 (se_simd_avx2.c: the same,
four lanes at a time, for CPUs without AVX-512 IFMA; run here with AVX-512 turned off).

The scalar path is itself checked against repr and the pure-Python twin elsewhere; here the
two C paths must agree wherever the vector one can differ: every lane position of an
irregular element (zero, subnormal, power of two, NaN, infinity) inside a block of eight,
every tail length, runs cut by short rows, chunk starts that are not multiples of eight,
the index of a non-finite element under the "error" policy, weights below one (laid out
eight at a time with AVX-512), and millions of seeded random patterns (all 2**32 float32
patterns with --slow).
"""
import numpy as np
import pytest

from streamexport.errors import NonFiniteError

try:
    from streamexport import _speedups
except ImportError:
    _speedups = None

pytestmark = pytest.mark.skipif(
    _speedups is None or not (_speedups.simd() or _speedups.simd_avx2()),
    reason="no vector path here (C core not built or CPU without AVX2)")

UINT = {"float32": np.uint32, "float64": np.uint64}
FLOAT = {"float32": np.float32, "float64": np.float64}
# what each vector path converts; the rest of its calls run the scalar path
FORMATS = {
    "avx512": {"float32": ["exact", "shortest"], "float64": ["exact"]},
    "avx2": {"float32": ["exact", "shortest"], "float64": ["exact"]},
}


def use_path(path):
    """Turns on the vector path `path` (and, for AVX2, the AVX-512 one off)."""
    _speedups.set_simd(True)
    if path == "avx2":
        _speedups.set_simd_avx512(False)


@pytest.fixture(params=["avx512", "avx2"])
def path(request):
    """Each test runs against each vector path this CPU has."""
    available = _speedups.simd() if request.param == "avx512" else _speedups.simd_avx2()
    if not available:
        pytest.skip(f"this CPU has no {request.param} path")
    use_path(request.param)
    request.addfinalizer(lambda: _speedups.set_simd(True))
    return request.param


def formats(path, dtype):
    if not FORMATS[path][dtype]:
        pytest.skip(f"the {path} path does not convert {dtype}")
    return FORMATS[path][dtype]


def both_paths(path, *args):
    """The vector path's output and the scalar path's, for the same call."""
    vector = _speedups.format_chunk(*args)
    _speedups.set_simd(False)
    try:
        scalar = _speedups.format_chunk(*args)
    finally:
        use_path(path)
    return vector, scalar


def irregular_values(dtype):
    f = FLOAT[dtype]
    info = np.finfo(f)
    return np.array([0.0, -0.0, info.smallest_subnormal, -info.smallest_subnormal * 3,
                     info.tiny, 1.0, -2.0, 0.5, 2.0 ** 20, info.max, np.inf, -np.inf, np.nan,
                     # float32 shortest leaves [1e10, 1e16) to the scalar path
                     1e10, 99999997952.0, -3e15, 1e16],
                    dtype=f)


def regular_values(dtype, n, seed):
    return (np.random.default_rng(seed).standard_normal(n) * 0.02).astype(FLOAT[dtype])


def test_set_simd_reports_and_restores_the_state():
    if not _speedups.simd():
        pytest.skip("no AVX-512 path on this CPU")
    assert _speedups.set_simd(False) is True
    assert _speedups.simd() is False
    assert _speedups.set_simd(True) is False
    assert _speedups.simd() is True


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_irregular_element_at_every_lane(path, dtype):
    for value in irregular_values(dtype):
        for lane in range(8):
            data = regular_values(dtype, 24, seed=lane)
            data[8 + lane] = value
            for float_format in formats(path, dtype):
                vector, scalar = both_paths(path, data, dtype, (24,), 0, 24, float_format,
                                            "literal")
                assert vector == scalar, (value, lane, float_format)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_tail_length_and_short_rows(path, dtype):
    data = regular_values(dtype, 4 * 37, seed=7)
    data[::11] = 0.0
    for float_format in formats(path, dtype):
        for n in range(0, 41):
            args = (data[:n], dtype, (n,), 0, n, float_format, "error")
            vector, scalar = both_paths(path, *args)
            assert vector == scalar, n
        for inner in (1, 3, 7, 8, 9, 16, 37):
            shape = (len(data) // inner, inner)
            count = shape[0] * inner
            args = (data[:count], dtype, shape, 0, count, float_format, "error")
            vector, scalar = both_paths(path, *args)
            assert vector == scalar, inner


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_chunks_that_start_between_blocks(path, dtype):
    formats(path, dtype)
    data = regular_values(dtype, 200, seed=3)
    whole = _speedups.format_chunk(data, dtype, (10, 20), 0, 200)
    for cut in (1, 5, 13, 99):
        parts = [both_paths(path, data[:cut], dtype, (10, 20), 0, cut),
                 both_paths(path, data[cut:], dtype, (10, 20), cut, 200 - cut)]
        assert all(vector == scalar for vector, scalar in parts)
        assert parts[0][0] + parts[1][0] == whole


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_first_nonfinite_index_in_every_lane(path, dtype):
    formats(path, dtype)
    for position in list(range(16)) + [21, 22, 23]:
        data = regular_values(dtype, 24, seed=position)
        data[position] = np.nan
        data[23] = np.inf  # later ones are not reported
        with pytest.raises(NonFiniteError) as vector:
            _speedups.format_chunk(data, dtype, (2, 12), 0, 24)
        _speedups.set_simd(False)
        try:
            with pytest.raises(NonFiniteError) as scalar:
                _speedups.format_chunk(data, dtype, (2, 12), 0, 24)
        finally:
            use_path(path)
        assert vector.value.index == scalar.value.index == position


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("seed", [1, 2])
def test_random_patterns(request, path, dtype, seed):
    """Uniformly random bits (every exponent, NaNs, subnormals) and weights-like values."""
    n = 20_000_000 if request.config.getoption("--slow") else 2_000_000
    rng = np.random.default_rng(seed)
    uint = UINT[dtype]
    bits = rng.integers(0, np.iinfo(uint).max, n, dtype=uint, endpoint=True)
    bits[::2] = (rng.standard_normal(n // 2) * 10.0 ** rng.integers(-8, 8, n // 2)).astype(
        FLOAT[dtype]).view(uint)
    for float_format in formats(path, dtype):
        vector, scalar = both_paths(path, bits, dtype, (n,), 0, n, float_format, "string")
        assert vector == scalar


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_weights_below_one_in_whole_and_mixed_blocks(path, dtype):
    """0.0001 <= |x| < 1, where AVX-512 lays out whole blocks of eight with byte permutes
    (se_simd_layout8): every sign, every count of zeros after the point and of digits, in
    blocks wholly inside that range and in blocks with some lanes outside it."""
    rng = np.random.default_rng(11)
    n = 400_000
    inside = rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(-4.0, 0.0, n)
    straddling = rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(-4.3, 0.1, n)
    # short digit strings (0.5 is a power of two: scalar; 0.75, 0.1, 0.3 are not) and the
    # ends of the range, at every lane
    edges = np.array([0.75, -0.1, 0.3, 0.0001, -0.00011, 0.999, 0.9999999,
                      np.nextafter(FLOAT[dtype](0.0001), FLOAT[dtype](0.0)),
                      np.nextafter(FLOAT[dtype](1.0), FLOAT[dtype](0.0))])
    for values in (inside, straddling, np.tile(edges, 64)):
        data = values.astype(FLOAT[dtype])
        for float_format in formats(path, dtype):
            vector, scalar = both_paths(path, data, dtype, (len(data),), 0, len(data),
                                        float_format, "error")
            assert vector == scalar


@pytest.mark.slow
@pytest.mark.parametrize("float_format", ["exact", "shortest"])
def test_all_float32_patterns(path, float_format):
    """Every float32 pattern, in blocks of 2**24 (several minutes per mode and path)."""
    if float_format not in formats(path, "float32"):
        pytest.skip(f"the {path} path does not convert float32 {float_format}")
    step = 1 << 24
    for start in range(0, 1 << 32, step):
        bits = np.arange(start, start + step, dtype=np.uint64).astype(np.uint32)
        vector, scalar = both_paths(path, bits, "float32", (step,), 0, step, float_format,
                                    "string")
        assert vector == scalar, hex(start)
