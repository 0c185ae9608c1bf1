"""float32 and float64: seeded random bit patterns, known hard cases, the number grammar.

exact mode is compared with Python's repr (through ``json.dumps(values.tolist())``), the
contract's own definition. float32 shortest mode is checked three ways: every token rounds back
to the same float32 (a vectorized parse through float64, proven exact below, with an exact
rational fallback), its digits equal numpy's ``str(np.float32)`` digits (Dragon4, a third,
independent implementation), and on the hard cases the full contract (no shorter decimal
rounds back, the closest is chosen) with exact rational arithmetic.

The C core is fast, so it takes the big random sets (about a million patterns per dtype and
mode by default, ten times more with --slow); the twin takes small ones. Seeds are in the
test ids.
"""
import json
import re

import numpy as np
import pytest

from streamexport import _native
from test_formatter_exhaustive import check_shortest

try:
    from streamexport import _speedups
except ImportError:
    _speedups = None

NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
NONFINITE = {"NaN", "Infinity", "-Infinity"}
UINT = {"float32": np.uint32, "float64": np.uint64}
FLOAT = {"float32": np.float32, "float64": np.float64}


def is_c(format_chunk):
    return format_chunk is not _native.format_chunk


def random_patterns(seed, n, dtype):
    """n seeded patterns: 3/4 uniformly random bits (all exponents, NaNs, subnormals), 1/4
    values of moderate size (binary exponent -30 .. 60: fixed notation, integers)."""
    rng = np.random.default_rng(seed)
    width = 8 * np.dtype(UINT[dtype]).itemsize
    bits = rng.integers(0, 2 ** width, n, dtype=UINT[dtype], endpoint=False)
    quarter = n // 4
    moderate = rng.standard_normal(quarter) * 2.0 ** rng.integers(-30, 60, quarter)
    bits[:quarter] = moderate.astype(FLOAT[dtype]).view(UINT[dtype])
    return bits


def tokens_of(out):
    assert out[:1] == b"[" and out[-1:] == b"]"
    return out[1:-1].decode("ascii").split(",")


def assert_grammar(tokens):
    bad = [t for t in tokens if t not in NONFINITE and not NUMBER.fullmatch(t)]
    assert not bad, bad[:5]


def sizes(format_chunk, request, c_default, twin_default):
    n = c_default if is_c(format_chunk) else twin_default
    return n * 10 if request.config.getoption("--slow") else n


# ---- exact mode against repr -------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("seed", [20261129, 4242], ids=lambda s: "seed=%d" % s)
def test_random_exact_is_repr(request, format_chunk, dtype, seed):
    n = sizes(format_chunk, request, 1_000_000 if seed == 20261129 else 100_000, 20_000)
    step = 1_000_000                          # bounded memory for the --slow sizes
    for first in range(0, n, step):
        bits = random_patterns(seed + first, min(step, n - first), dtype)
        values = bits.view(FLOAT[dtype])
        out = format_chunk(bits, dtype, (len(bits),), 0, len(bits), "exact", "literal")
        expected = json.dumps(values.tolist(), separators=(",", ":")).encode()
        if out != expected:
            got, want = tokens_of(out), tokens_of(expected)
            bad = next(i for i in range(len(want)) if got[i] != want[i])
            pytest.fail("seed %d: %s pattern %#x: %s != repr %s"
                        % (seed + first, dtype, int(bits[bad]), got[bad], want[bad]))
        assert_grammar(tokens_of(out))


# ---- float32 shortest: round trip and numpy's digits ----------------------------------------

def _load_checker():
    """benchmarks/check_all_float32.py as a module: its exact float32 parse-back (with the proof
    in its docstring) is the oracle here too, so the tests exercise the very code it runs."""
    import importlib.util
    import pathlib
    path = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "check_all_float32.py"
    spec = importlib.util.spec_from_file_location("check_all_float32", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CHECKER = _load_checker()
parse_float32 = CHECKER.parse_float32


def test_parse_float32_handles_midpoints():
    # 1 + 2**-24 is halfway between 1 and its float32 successor: ties to even gives 1.0; a
    # decimal a hair above it must round up although its float64 is the midpoint itself
    half = "1.000000059604644775390625"
    above = half + "000000000000000000001"
    threshold = str(2 ** 128 - 2 ** 103)      # max + ulp/2: overflows (max's significand is odd)
    bits = parse_float32([half, above, "-" + above, threshold, "3.4028235677973366e38", "1e-46"])
    assert bits.tolist() == [0x3F800000, 0x3F800001, 0xBF800001, 0x7F800000, 0x7F7FFFFF, 0]


@pytest.mark.parametrize("seed", [777, 31337], ids=lambda s: "seed=%d" % s)
def test_random_float32_shortest(request, format_chunk, seed):
    n = sizes(format_chunk, request, 500_000, 3_000)
    step = 1_000_000
    for first in range(0, n, step):
        bits = random_patterns(seed + first, min(step, n - first), "float32")
        values = bits.view(np.float32)
        bits = bits[np.isfinite(values)]
        values = values[np.isfinite(values)]
        out = format_chunk(bits, "float32", (len(bits),), 0, len(bits), "shortest")
        tokens = tokens_of(out)
        assert_grammar(tokens)
        # 1. every token rounds back to its own float32
        back = parse_float32(tokens)
        wrong = np.flatnonzero(back != bits)
        assert not len(wrong), ("seed %d: %#x -> %s does not round back"
                                % (seed + first, int(bits[wrong[0]]), tokens[wrong[0]]))
        # 2. the digits are numpy's (shortest, closest): <= 9 significant digits each, so
        #    equal float64 values mean equal decimals
        theirs = np.array(values.astype(str), dtype=np.float64)
        ours = np.array(tokens, dtype=np.float64)
        differ = np.flatnonzero((theirs != ours) | (np.signbit(theirs) != np.signbit(ours)))
        assert not len(differ), ("seed %d: %#x: %s, numpy %s" % (
            seed + first, int(bits[differ[0]]), tokens[differ[0]], values[differ[0]]))
        # 3. never more significant digits than exact, and laid out like repr
        for token in tokens[:2000]:
            assert repr(float(token)) == token


@pytest.mark.skipif(_speedups is None, reason="the C core is not built")
@pytest.mark.parametrize("float_format", ["exact", "shortest"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_c_equals_twin_random(dtype, float_format):
    bits = random_patterns(99, 4000, dtype)
    args = (bits, dtype, (40, 100), 0, 4000, float_format, "string")
    assert _speedups.format_chunk(*args) == _native.format_chunk(*args)


# ---- hard cases ---------------------------------------------------------------------------

def hard_float64():
    values = [0.0, -0.0, 5e-324, 1e-323, 2.2250738585072009e-308, 2.2250738585072014e-308,
              1.7976931348623157e308, 2.0 ** 53 - 1, 2.0 ** 53, 2.0 ** 53 + 2, -(2.0 ** 53 + 2),
              1e-5, 1e-4, 0.001, 9999999999999998.0, 1e16, 1e15, 1e17, 123456789012345680.0,
              0.1, 0.2, 0.3, 0.1 + 0.2, 1 / 3, 2 / 3, 1e23, 9.5e-5, 5e-5, 0.5, 1.5, 2.5,
              4.35, 0.125, 100.0, 1e21, 1e22, 9007199254740993.0, 4.940656458412465e-324]
    values += [2.0 ** e for e in range(-1074, 1024)]
    values += [float("1e%d" % e) for e in range(-323, 309)]
    values += [float(i) for i in range(-2000, 2001)]
    arr = np.array(values, dtype=np.float64)
    with np.errstate(over="ignore"):
        near = np.concatenate([np.nextafter(arr, np.inf), np.nextafter(arr, -np.inf)])
    arr = np.concatenate([arr, -arr, near])
    return arr[np.isfinite(arr)]


def hard_float32():
    values = [0.0, -0.0, 2.0 ** -149, 2.0 ** -148, 1.1754942e-38, 1.1754944e-38,
              3.4028234663852886e38, 16777215.0, 16777216.0, 16777218.0, 1e-5, 1e-4,
              1e7, 1e8, 1e9, 1e10, 1e11, 1e15, 1e16, 0.1, 0.2, 0.3, 1 / 3, 2.5, 4.35]
    values += [2.0 ** e for e in range(-149, 128)]
    values += [float("1e%d" % e) for e in range(-45, 39)]
    values += [float(i) for i in range(-300, 301)]
    with np.errstate(over="ignore", under="ignore"):
        arr = np.array(values, dtype=np.float64).astype(np.float32)
        near = np.concatenate([np.nextafter(arr, np.float32(np.inf)),
                               np.nextafter(arr, np.float32(-np.inf))])
    arr = np.concatenate([arr, -arr, near])
    return arr[np.isfinite(arr)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_hard_cases_exact(format_chunk, dtype):
    values = hard_float64() if dtype == "float64" else hard_float32()
    bits = values.view(UINT[dtype])
    out = format_chunk(bits, dtype, (len(bits),), 0, len(bits))
    assert out == json.dumps(values.tolist(), separators=(",", ":")).encode()
    assert_grammar(tokens_of(out))


def test_hard_cases_float32_shortest(format_chunk):
    values = hard_float32()
    bits = values.view(np.uint32)
    out = format_chunk(bits, "float32", (len(bits),), 0, len(bits), "shortest")
    for pattern, token, value in zip(bits.tolist(), tokens_of(out), values.tolist()):
        check_shortest(token, pattern, value, "float32")


def test_hard_cases_known_tokens(format_chunk):
    def one(value, dtype, mode="exact"):
        bits = np.array([value], dtype=FLOAT[dtype]).view(UINT[dtype])
        return format_chunk(bits, dtype, (), 0, 1, mode).decode()

    assert one(5e-324, "float64") == "5e-324"
    assert one(1.7976931348623157e308, "float64") == "1.7976931348623157e+308"
    assert one(2.0 ** 53 + 2, "float64") == "9007199254740994.0"
    assert one(1e16, "float64") == "1e+16"
    assert one(9999999999999998.0, "float64") == "9999999999999998.0"
    assert one(1e-5, "float64") == "1e-05"
    assert one(0.0001, "float64") == "0.0001"
    assert one(-0.0, "float64") == "-0.0"
    assert one(0.1, "float32") == "0.10000000149011612"
    assert one(0.1, "float32", "shortest") == "0.1"
    assert one(2.0 ** -149, "float32") == "1.401298464324817e-45"
    assert one(2.0 ** -149, "float32", "shortest") == "1e-45"
    assert one(3.4028234663852886e38, "float32", "shortest") == "3.4028235e+38"
    # float32(1e11) is 99999997952: its fewest digits, "1e11", print as "100000000000.0",
    # longer than the exact token, which is therefore the shortest text.
    assert one(1e11, "float32", "shortest") == "99999997952.0"
    assert one(16777217.0, "float32", "shortest") == "16777216.0"
    assert one(33554436.0, "float32", "shortest") == "33554436.0"
    assert one(1.5e16, "float32", "shortest") == "1.5e+16"


@pytest.mark.skipif(_speedups is None, reason="the C core is not built")
def test_check_all_float32_script_smoke(capsys):
    # the exhaustive checker itself, on a few small ranges: around 1.0, the subnormals, and
    # the top of the exponent range (max, infinity, NaNs, -0.0 and on)
    module = CHECKER
    for lo in (0x3F7FFC00, 0x00000000, 0x7F7FFC00, 0xFFFFFC00):
        status = module.main(["--start", hex(lo), "--stop", hex(lo + 0x800), "--block", "0x400",
                              "--workers", "1", "--digits"])
        assert status == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "RESULT: all correct" in out and "FAIL" not in out

    # and it fails when one token is wrong (a shortest token one unit off)
    class Corrupt:
        @staticmethod
        def format_chunk(data, dtype, shape, start, count, float_format, nonfinite):
            out = _speedups.format_chunk(data, dtype, shape, start, count, float_format, nonfinite)
            return out.replace(b",1.0000001,", b",1.0000002,") if float_format == "shortest" else out

    real, module._speedups = module._speedups, Corrupt
    try:
        status = module.main(["--start", "0x3F800000", "--stop", "0x3F800400", "--workers", "1"])
    finally:
        module._speedups = real
    out = capsys.readouterr().out
    assert status == 1 and "FAIL shortest 0x3f800001" in out, out
