"""The C core on other kinds of CPU, where no vector path is compiled: aarch64 (ARM servers,
Graviton, Apple silicon under Linux; char is unsigned there) and s390x (IBM Z, big-endian).

Built with a cross compiler and run under qemu-user, it must give the bytes that this
machine's build gives -- which the other tests check against repr -- for every 16- and
8-bit pattern, for random float32 and float64 bit patterns and weights in both modes, for
the integer dtypes, and the same CRC-32s, whole and combined from pieces. A big-endian
machine reads the elements in its own byte order, so it gets them byte-swapped.

Each target runs where its cross compiler and qemu are installed (Debian's
gcc-aarch64-linux-gnu, gcc-s390x-linux-gnu and qemu-user); skipped elsewhere.
"""
import glob
import os
import shutil
import subprocess

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CSRC = os.path.join(ROOT, "csrc")
# target -> (cross compiler, qemu-user program, byte order)
TARGETS = {"aarch64": ("aarch64-linux-gnu-gcc", "qemu-aarch64", "little"),
           "s390x": ("s390x-linux-gnu-gcc", "qemu-s390x", "big")}

pytestmark = pytest.mark.skipif(not os.path.isdir(CSRC), reason="needs a source checkout")


def _c_core_sources():
    """The C core below its glue files (_speedups.c and _crc32.c hold every PyObject)."""
    return (sorted(glob.glob(os.path.join(CSRC, "se_*.c"))) +
            sorted(glob.glob(os.path.join(CSRC, "crc32", "se_*.c"))) +
            [os.path.join(ROOT, "tests", "c", "format_file.c")])


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """build(name) -> the command that runs tests/c/format_file.c built for target `name`
    ("here": this machine, with $CC or cc), built once; skips where the tools are absent."""
    out = tmp_path_factory.mktemp("other_cpu")
    flags = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter",
             f"-I{CSRC}", f"-I{os.path.join(CSRC, 'crc32')}"]
    built = {}

    def command(name):
        if name not in built:
            if name == "here":
                compiler, qemu, extra = os.environ.get("CC", "cc"), None, []
            else:
                compiler, qemu, _ = TARGETS[name]
                extra = ["-static"]
                if not (shutil.which(compiler) and shutil.which(qemu)):
                    pytest.skip(f"needs {compiler} and {qemu}")
            binary = str(out / f"format_file_{name}")
            result = subprocess.run([compiler, *flags, *extra, *_c_core_sources(), "-o", binary],
                                    capture_output=True, text=True, timeout=300)
            assert result.returncode == 0, f"{compiler}:\n{result.stderr}"
            built[name] = [binary] if qemu is None else [qemu, binary]
        return built[name]
    return command


def _inputs():
    rng = np.random.default_rng(20261130)
    all16 = np.arange(2 ** 16, dtype=np.uint16)
    all8 = np.arange(2 ** 8, dtype=np.uint8)
    bits32 = rng.integers(0, 2 ** 32, 300_000, dtype=np.uint64).astype(np.uint32)
    bits64 = rng.integers(0, 2 ** 63, 200_000, dtype=np.uint64) | \
        (rng.integers(0, 2, 200_000, dtype=np.uint64) << np.uint64(63))
    weights = rng.normal(0.0, 0.02, 300_000).astype(np.float32)
    cases = []
    for float_format in ("exact", "shortest"):
        cases += [("float16", float_format, all16), ("bfloat16", float_format, all16),
                  ("float8_e4m3fn", float_format, all8), ("float8_e5m2", float_format, all8),
                  ("float8_e4m3fnuz", float_format, all8), ("float8_e5m2fnuz", float_format, all8),
                  ("float8_e8m0fnu", float_format, all8),
                  ("float32", float_format, bits32), ("float32", float_format, weights),
                  ("float64", float_format, bits64)]
    cases += [("int8", "exact", all8), ("uint8", "exact", all8), ("bool", "exact", all8 % 2),
              ("int16", "exact", all16), ("int32", "exact", bits32),
              ("int64", "exact", bits64), ("uint16", "exact", all16), ("uint32", "exact", bits32),
              ("uint64", "exact", bits64), ("crc32", "-", bits64)]
    return cases


CASES = _inputs()


@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize("dtype, float_format, data", CASES,
                         ids=[f"{d}-{f}-{i}" for i, (d, f, _) in enumerate(CASES)])
def test_other_cpu_gives_the_same_bytes(build, tmp_path, target, dtype, float_format, data):
    there = build(target)
    here = build("here")
    swapped = TARGETS[target][2] == "big" and dtype != "crc32"
    outputs = {}
    for name, command, elements in (("here", here, data),
                                    (target, there, data.byteswap() if swapped else data)):
        path = tmp_path / f"{name}.bin"
        elements.tofile(path)
        result = subprocess.run([*command, dtype, float_format, str(path)], capture_output=True,
                                timeout=600)
        assert result.returncode == 0, (name, result.stderr)
        outputs[name] = result.stdout
    if dtype != "crc32":
        from streamexport.formatter import format_chunk
        # the harness is the C core the extension wraps: same bytes as the package's formatter
        assert outputs["here"] == format_chunk(data, dtype, (data.size,), 0, data.size,
                                               float_format, "literal")
    else:
        import zlib
        size = data.nbytes
        cuts = len(range(0, size + 1, size // 5 + 7))      # format_file.c's print_crc
        assert outputs["here"].decode().split() == [f"{zlib.crc32(data.tobytes()):08x}"] * (1 + cuts)
    assert outputs[target] == outputs["here"]
