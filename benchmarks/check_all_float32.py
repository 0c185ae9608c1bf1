"""Check every float32 bit pattern (2**32 of them) through the C core, in parallel.

    python benchmarks/check_all_float32.py                    # all patterns, both modes
    python benchmarks/check_all_float32.py --workers 2 --every 64   # one block in 64
    python benchmarks/check_all_float32.py --block 0x8000 --every 64 --offset 32 --digits
    python benchmarks/check_all_float32.py --start 0x3f800000 --stop 0x40000000

Each worker takes a block of consecutive patterns, formats it with the C core in both float
formats (non-finite values as Python's literals), and checks:

exact     The text equals ``json.dumps`` of the values widened to float64 (compact
          separators): Python's repr of each value, NaN and the infinities as json.dumps
          spells them -- TorchLean's adapter's own text. Independent of the C core. (Python's
          repr, ~1 us a value, is most of the run; numpy's Dragon4 ``str()``, used before,
          took twice as long.)
shortest  Every finite token parses back to the same float32 bits. The parse is vectorized:
          numpy's correctly rounded string -> float64 parse D, then float64 -> float32. That is
          exact except when D is exactly a float32 midpoint (double rounding; see
          ``parse_float32`` for the proof); those tokens are rounded exactly with rational
          arithmetic. With ``--digits`` also: the digits equal numpy's float32 ``str()``
          (Dragon4, shortest and closest), which proves "no shorter decimal rounds back".
          Non-finite tokens must be NaN / Infinity / -Infinity at exactly the right places.

Prints the wall time, the patterns checked per second and the result; exit status 1 on any
failure (the first few are printed with their patterns).
"""
import argparse
import json
import os
import platform
import sys
import time
from fractions import Fraction
from multiprocessing import Pool

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from streamexport import _native  # noqa: E402

try:
    from streamexport import _speedups  # noqa: E402
except ImportError:
    _speedups = None

NONFINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def parse_float32(tokens):
    """The float32 bit patterns (uint32) that finite decimal tokens round to, exactly.

    D = RN64(d) is numpy's correctly rounded parse. Every float32, every midpoint of two
    neighbouring float32 and the overflow threshold 2**128 - 2**103 are float64 values; RN64
    is monotone and leaves float64 values alone, so for each such point m, d < m gives D <= m
    and d > m gives D >= m. If D is not itself a midpoint, D and d lie strictly between the
    same two midpoints and so round to the same float32: RN32(D) == RN32(d). Tokens whose D is
    a midpoint (or overflows) are rounded exactly with rational arithmetic.
    """
    doubles = np.array(tokens, dtype=np.float64)
    with np.errstate(over="ignore"):
        singles = doubles.astype(np.float32)
    result = singles.view(np.uint32).copy()
    widened = singles.astype(np.float64)
    inexact = np.flatnonzero(widened != doubles)
    if len(inexact):
        s = singles[inexact]
        w = widened[inexact]
        d = doubles[inexact]
        with np.errstate(over="ignore", invalid="ignore"):
            up = np.nextafter(s, np.float32(np.inf)).astype(np.float64)
            down = np.nextafter(s, np.float32(-np.inf)).astype(np.float64)
            suspect = ((w + up) / 2 == d) | ((w + down) / 2 == d) | np.isinf(w)
        for i in inexact[suspect]:
            token = tokens[i]
            result[i] = _native.round_to_bits(Fraction(token), "float32",
                                              negative=token.startswith("-"))
    return result


def expected_exact(values):
    """json.dumps of the float32 values widened to float64: "[" tokens "]", each token
    Python's repr of its value (NaN, Infinity, -Infinity for the others)."""
    with np.errstate(invalid="ignore"):
        doubles = values.astype(np.float64)
    return json.dumps(doubles.tolist(), separators=(",", ":"))


def nonfinite_tokens(values):
    """The tokens json.dumps writes for non-finite values."""
    text = np.full(len(values), NONFINITE["nan"], dtype=object)
    text[np.isposinf(values)] = NONFINITE["inf"]
    text[np.isneginf(values)] = NONFINITE["-inf"]
    return text


def check_block(task):
    """Check patterns [lo, hi); return (lo, hi, failures)."""
    lo, hi, digits = task
    bits = np.arange(lo, hi, dtype=np.uint64).astype(np.uint32)
    values = bits.view(np.float32)
    n = len(bits)
    failures = []

    def fail(mode, index, token, want):
        if len(failures) < 5:
            failures.append("%s %#010x: got %s, expected %s" % (mode, int(bits[index]), token, want))

    # exact: token for token against repr of the widened value
    out = _speedups.format_chunk(bits, "float32", (n,), 0, n, "exact", "literal")
    want = expected_exact(values)
    if out != want.encode():
        got = out[1:-1].decode().split(",")
        for i, (g, w) in enumerate(zip(got, want[1:-1].split(","))):
            if g != w:
                fail("exact", i, g, w)
        if len(got) != n:
            failures.append("exact: %d tokens for %d patterns at %#x" % (len(got), n, lo))

    # shortest: parses back to the same bits; optionally numpy's digits
    out = _speedups.format_chunk(bits, "float32", (n,), 0, n, "shortest", "literal")
    tokens = out[1:-1].decode().split(",")
    if len(tokens) != n:
        failures.append("shortest: %d tokens for %d patterns at %#x" % (len(tokens), n, lo))
        return lo, hi, failures
    finite = np.isfinite(values)
    index = np.flatnonzero(finite)
    if len(index) < n:
        array = np.array(tokens)
        others = np.flatnonzero(~finite)
        expected = nonfinite_tokens(values[others])
        for j in np.flatnonzero(array[others] != expected)[:5]:
            fail("shortest", others[j], array[others[j]], expected[j])
        finite_tokens = array[index].tolist()
    else:
        finite_tokens = tokens
    back = parse_float32(finite_tokens)
    for j in np.flatnonzero(back != bits[index])[:5]:
        fail("shortest", index[j], finite_tokens[j], "a token that rounds back to the pattern")
    if digits:
        theirs = np.array(values[index].astype(str), dtype=np.float64)   # <= 9 digits: exact
        ours = np.array(finite_tokens, dtype=np.float64)
        differ = (theirs != ours) | (np.signbit(theirs) != np.signbit(ours))
        for j in np.flatnonzero(differ)[:5]:
            fail("shortest", index[j], finite_tokens[j], "numpy's %s" % values[index[j]])
    return lo, hi, failures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--start", type=lambda s: int(s, 0), default=0)
    parser.add_argument("--stop", type=lambda s: int(s, 0), default=2 ** 32)
    parser.add_argument("--block", type=lambda s: int(s, 0), default=1 << 19,
                        help="patterns per task (memory: about 250 bytes a pattern)")
    parser.add_argument("--every", type=int, default=1,
                        help="check one block in EVERY (a sample spread over the range)")
    parser.add_argument("--offset", type=int, default=0,
                        help="with --every: check the blocks whose number is OFFSET mod EVERY")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--digits", action="store_true",
                        help="also compare shortest digits with numpy's float32 str()")
    args = parser.parse_args(argv)
    if _speedups is None:
        sys.exit("the C core (streamexport._speedups) is not built")

    starts = range(args.start, args.stop, args.block)
    tasks = [(lo, min(lo + args.block, args.stop), args.digits)
             for k, lo in enumerate(starts) if k % args.every == args.offset % args.every]
    total = sum(hi - lo for lo, hi, _ in tasks)
    print("check_all_float32: %d patterns in [%#x, %#x), %d blocks of %d (one in %d, offset %d),"
          " %d workers, digits=%s" % (total, args.start, args.stop, len(tasks), args.block,
                                       args.every, args.offset, args.workers, args.digits))
    print("machine: %s, %d CPUs usable; Python %s; numpy %s; %s"
          % (platform.machine(), len(os.sched_getaffinity(0)), platform.python_version(),
             np.__version__, time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())))
    sys.stdout.flush()

    began = time.perf_counter()
    done = 0
    failures = []
    next_report = began + 60
    pool = Pool(args.workers) if args.workers > 1 else None
    results = pool.imap_unordered(check_block, tasks) if pool else map(check_block, tasks)
    try:
        for lo, hi, failed in results:
            done += hi - lo
            failures.extend(failed)
            for line in failed:
                print("FAIL", line)
            now = time.perf_counter()
            if now >= next_report:
                print("  %.1f%% (%d patterns) after %.0f s, %.2f M patterns/s"
                      % (100.0 * done / total, done, now - began, done / (now - began) / 1e6))
                sys.stdout.flush()
                next_report = now + 60
    finally:
        if pool:
            pool.terminate()
    wall = time.perf_counter() - began
    print("checked %d float32 patterns (exact and shortest) in %.1f s wall, %.2f M patterns/s"
          % (done, wall, done / wall / 1e6))
    print("RESULT: %s" % ("FAIL (%d)" % len(failures) if failures else "all correct"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
