"""streamexport._crc32 against zlib.crc32: the same int for every input and starting value.

Each check runs on every path this CPU has (VPCLMULQDQ, PCLMULQDQ, the table), switched in
process; a subprocess checks that STREAMEXPORT_DISABLE_SIMD=1 picks the table. The folding
paths hand inputs shorter than a few lanes, and every input's last bytes, to the table, so
the lengths around those cut-offs (64, 256, multiples of 16) are all covered by 0..2048.
"""
import array
import mmap
import os
import random
import subprocess
import sys
import zlib

import pytest

import streamexport
from streamexport import zipcheck

try:
    from streamexport import _crc32
except ImportError:
    _crc32 = None

pytestmark = pytest.mark.skipif(_crc32 is None, reason="the C core is not built")

PATHS = ("vpclmulqdq", "pclmulqdq", "table")
DEFAULT = _crc32.implementation() if _crc32 is not None else None   # before any switching


@pytest.fixture(params=PATHS)
def crc32(request):
    """_crc32.crc32 on one path, or a skip where this CPU lacks it."""
    try:
        previous = _crc32._set_implementation(request.param)
    except ValueError as exc:
        pytest.skip(str(exc))
    request.addfinalizer(lambda: _crc32._set_implementation(previous))
    assert _crc32.implementation() == request.param
    return _crc32.crc32


def test_every_length_at_every_alignment(crc32):
    data = memoryview(random.Random(1).randbytes(2048 + 64))
    for start in range(64):
        for length in range(2049):
            piece = data[start:start + length]
            value = (length * 0x9E3779B1 + start) & 0xFFFFFFFF
            assert crc32(piece, value) == zlib.crc32(piece, value), (start, length)
            if length % 97 == 0:
                assert crc32(piece) == zlib.crc32(piece), (start, length)


@pytest.mark.parametrize("seed", [2, 3])
def test_random_lengths_and_starting_values(crc32, seed):
    rng = random.Random(seed)
    data = memoryview(rng.randbytes(4 << 20))
    for value in (0, 0xFFFFFFFF, rng.getrandbits(32), rng.getrandbits(32)):
        for _ in range(6):
            start = rng.randrange(256)
            piece = data[start:start + rng.randrange(len(data) - start)]
            assert crc32(piece, value) == zlib.crc32(piece, value), (seed, value, len(piece))


def test_chained_calls_equal_one_call(crc32):
    data = random.Random(4).randbytes(100_000)
    whole = zlib.crc32(data)
    for cut in (0, 1, 15, 16, 63, 64, 255, 256, 257, 4097, 65_536, 99_999, 100_000):
        assert crc32(data[cut:], crc32(data[:cut])) == whole, cut
    crc = 0
    for begin in range(0, len(data), 777):
        crc = crc32(data[begin:begin + 777], crc)
    assert crc == whole


def test_memoryview_slices_of_an_mmap(crc32, tmp_path):
    path = tmp_path / "data"
    path.write_bytes(random.Random(5).randbytes(3 << 20))
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped, \
            memoryview(mapped) as whole:
        for begin, end in ((0, len(mapped)), (1, len(mapped) - 3), (4095, 4097),
                           (12345, 2_000_001), (len(mapped) - 100, len(mapped))):
            with whole[begin:end] as piece:
                assert crc32(piece, 7) == zlib.crc32(piece, 7), (begin, end)


def test_other_contiguous_buffers(crc32):
    data = random.Random(6).randbytes(10_000)
    assert crc32(bytearray(data)) == zlib.crc32(data)
    doubles = array.array("d", range(1000))
    assert crc32(doubles) == zlib.crc32(doubles)
    assert crc32(memoryview(doubles).cast("B")[3:]) == zlib.crc32(doubles.tobytes()[3:])


def test_values_beyond_32_bits_are_masked_as_zlib_masks_them(crc32):
    data = b"streamexport" * 100
    for value in (-1, -2, 1 << 32, (1 << 40) + 5, -(1 << 70)):
        assert crc32(data, value) == zlib.crc32(data, value), value


@pytest.mark.parametrize("args", [
    (memoryview(b"abcdefgh")[::2],),                          # not contiguous
    ("abc",),                                                 # not a buffer
    (b"abc", 1.0),                                            # not an int
    (),
    (b"abc", 0, 0),
], ids=["strided", "str", "float-value", "no-args", "three-args"])
def test_what_zlib_refuses_is_refused_with_its_exception_class(args):
    with pytest.raises(Exception) as ours:
        _crc32.crc32(*args)
    with pytest.raises(Exception) as theirs:
        zlib.crc32(*args)
    assert ours.type is theirs.type and ours.type in (TypeError, BufferError)


def test_unknown_path_names_are_refused():
    with pytest.raises(ValueError, match="no CRC-32 path"):
        _crc32._set_implementation("crc32c")
    assert _crc32.implementation() in PATHS


def run_in_child(code, **env):
    root = os.path.dirname(os.path.dirname(os.path.abspath(streamexport.__file__)))
    # cwd too: ``python -c`` puts it first on sys.path, and from a checkout without an
    # in-place build it would shadow the installed package this test imported
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": root, **env}, cwd=root, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


CHILD = """
import random, zlib
from streamexport import _crc32
data = random.Random(7).randbytes(1 << 20)
ok = all(_crc32.crc32(data[s:s + n], s) == zlib.crc32(data[s:s + n], s)
         for s in range(0, 64, 7) for n in (0, 5, 64, 300, 4096, len(data) - 64))
print(_crc32.implementation(), ok)
"""


def test_disable_simd_switch_picks_the_table_path():
    assert run_in_child(CHILD, STREAMEXPORT_DISABLE_SIMD="1") == ["table", "True"]


def test_the_default_path_is_the_fastest_this_cpu_has():
    if os.environ.get("STREAMEXPORT_DISABLE_SIMD", "") not in ("", "0"):
        pytest.skip("this run asked for the table path")
    previous = _crc32.implementation()
    try:
        for name in PATHS:      # fastest first
            try:
                _crc32._set_implementation(name)
            except ValueError as exc:
                assert "not supported by this CPU" in str(exc)
                continue
            assert name == DEFAULT
            break
    finally:
        _crc32._set_implementation(previous)


def test_zipcheck_uses_the_c_crc32():
    assert zipcheck.crc32 is _crc32.crc32


@pytest.mark.parametrize("combine", ["c", "python"])
def test_combine_gives_the_crc_of_the_concatenation(combine):
    """combine(crc(a), crc(b), len(b)) == crc(a + b): the C one and its Python twin, for
    empty, short, long and zero-filled pieces (the last ones up to 64 MB, where the length's
    high bits count)."""
    combine = _crc32.combine if combine == "c" else zipcheck._crc32_combine
    rng = random.Random(17)
    for _ in range(300):
        a = rng.randbytes(rng.choice([0, 1, 3, rng.randrange(1, 3000)]))
        b = rng.randbytes(rng.choice([0, 1, 2, 15, 16, 17, rng.randrange(1, 70000)]))
        assert combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)
    for length in (1 << 20, (1 << 26) + 12345):
        zeros = bytes(length)
        assert combine(zlib.crc32(b"head"), zlib.crc32(zeros), length) == \
            zlib.crc32(b"head" + zeros)


def test_combine_refuses_what_is_not_a_crc():
    with pytest.raises(ValueError):
        _crc32.combine(1 << 32, 0, 1)
    with pytest.raises((OverflowError, TypeError)):
        _crc32.combine(0, 0, -1)
