"""verify in parallel: an export cut into parts of whole tensors, each read by a process.

ijson's parser runs at ~50-90 MB/s here and holds the GIL, so a 100 GB export takes half an
hour to verify on one core; its tensors, though, can be read apart. ``verify_in_parts``:

1. finds the document's top structure without parsing it (``scan_structure``, C: the
   brackets, commas and colons outside strings at depth <= 2, ~2 GB/s). Only the layout
   exports have -- ``{"meta": {...}, "params": {...}}`` or ``{"params": {...}}`` -- is cut;
   anything else is left to the one-process reading;
2. cuts the params' members into ``jobs`` runs of about equal bytes; part k is read as the
   document ``prefix + members of run k + suffix``, where the prefix is the file up to the
   params' "{" (meta included) and the suffix the file from its "}" on. Every part is thus a
   whole JSON document made of the file's own bytes, and together the parts hold each byte
   of the file (the prefix and suffix in every part);
3. verifies every part in a process of its own with the one-process code, told that it holds
   only some of the params;
4. keeps the result only if every part passed, they agree on the float format, and the keys
   they saw, together, are each seen once and are exactly meta's and the checkpoint's.
   Otherwise -- a failure anywhere, a uint64 beyond yajl's range, a doubt -- it returns None
   and the caller reads the file again in one process, so that a failing file gets exactly
   the failures, in order, that one process reports.

So a sound export gets the one-process report (counts, float format) in a fraction of its
time, and any other file the one-process report, later.
"""
import multiprocessing
import os
import signal

import numpy as np

from .progress import progress_for

# A part is at least this large: starting its process (which imports torch) takes ~1-2 s
# and ~250 MB, what ijson reads of ~100-200 MB. Files under twice this are read in one
# process.
MIN_PART_BYTES = 256 << 20


def verify_in_parts(backend, path, jobs, options):
    """The VerifyReport of ``path`` read in ``jobs`` processes, or None when the file is not
    worth or fit for cutting, or when any part found anything (see the module)."""
    try:
        from ._verify_events import scan_structure
    except ImportError:
        return None
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
    except OSError:
        return None             # the one-process reading words the error
    jobs = min(jobs, size // MIN_PART_BYTES)
    if jobs < 2 or backend.__name__.rsplit(".", 1)[-1] != "yajl2_c":
        return None
    context = multiprocessing.get_context("spawn")   # torch and threads: never fork
    counter = context.Value("q", 0)
    # the workers start (each imports torch, ~1-2 s) while this process scans the file
    pool = context.Pool(jobs, initializer=_start_worker, initargs=(counter,))
    try:
        cut = _layout(path, scan_structure)
        parts = _runs(cut[1], jobs) if cut is not None else []
        if len(parts) < 2:
            pool.terminate()
            return None
        results = _run_parts(pool, counter, path, size, parts, cut[0], cut[2], options)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
    from .verify import VerifyReport
    return _merge(VerifyReport(path, options.get("against")), backend, size, results,
                  options)


def _layout(path, scan_structure):
    """(prefix end, [(start, end) of each params member], suffix start), or None."""
    with open(path, "rb") as file:
        marked = _marks(file, scan_structure)
        if marked is None:
            return None
        offsets, kinds = marked
        opens = np.isin(kinds, (ord("{"), ord("[")))
        closes = np.isin(kinds, (ord("}"), ord("]")))
        level = np.cumsum(opens.astype(np.int64) - closes) - opens   # an opener: before it
        top = np.flatnonzero(level <= 1)
        # the top object's own marks: { key : value-open value-close , key : ... }
        if len(top) < 2 or kinds[top[0]] != ord("{") or level[top[0]] != 0 \
                or kinds[top[-1]] != ord("}") or level[top[-1]] != 0:
            return None
        inner = top[1:-1]
        names, values = [], []
        begin = int(offsets[top[0]]) + 1
        for at in range(0, len(inner), 4):
            group = inner[at:at + 4]
            if bytes(kinds[group]) not in (b":{}", b":{},"):
                return None
            file.seek(begin)
            names.append(file.read(min(int(offsets[group[0]]) - begin, 64)).strip())
            values.append((group[1], group[2]))
            if len(group) == 4:
                begin = int(offsets[group[3]]) + 1
        if names not in ([b'"meta"', b'"params"'], [b'"params"']):
            return None
    opened, closed = values[-1]
    inside = np.arange(opened + 1, closed)
    commas = offsets[inside[(level[inside] == 2) & (kinds[inside] == ord(","))]]
    if not len(commas):
        return None             # one tensor or none: nothing to cut
    prefix_end, suffix_start = int(offsets[opened]) + 1, int(offsets[closed])
    bounds = [prefix_end] + commas.tolist() + [suffix_start]
    starts = [bounds[0]] + [b + 1 for b in bounds[1:-1]]
    return prefix_end, list(zip(starts, bounds[1:])), suffix_start


_PIECE = 16 << 20


def _marks(file, scan_structure):
    """scan_structure over the whole file, read a piece at a time into one buffer (a
    mapping of it would count the whole file in this process's memory): (offsets, marks)
    as numpy arrays, or None if the text is not whole."""
    buffer = bytearray(_PIECE)
    state, base = (0, False, False), 0
    offsets, marks = [], []
    with memoryview(buffer) as view:
        while True:
            count = file.readinto(buffer)
            if not count:
                break
            with view[:count] as piece:
                state, broken, found, kinds = scan_structure(piece, 2, base, state)
            offsets.append(found)
            marks.append(kinds)
            base += count
            if broken:
                return None
    if state != (0, False, False) or base == 0:
        return None
    return np.frombuffer(b"".join(offsets), np.int64), np.frombuffer(b"".join(marks), np.uint8)


def _runs(members, jobs):
    """Consecutive members in ``jobs`` runs of about equal bytes: [(start, end)]."""
    total = members[-1][1] - members[0][0]
    runs, first = [], 0
    for index, (_, end) in enumerate(members):
        share = (len(runs) + 1) * total / jobs
        if end - members[0][0] >= share or index == len(members) - 1:
            runs.append((members[first][0], end))
            first = index + 1
            if len(runs) == jobs - 1 and first < len(members):
                runs.append((members[first][0], members[-1][1]))
                break
    return runs


class _Spliced:
    """A part's document: the file's bytes [0, prefix_end), [start, end), [suffix_start,
    size), read in order; the bytes read are added to ``counter`` (the parent's progress)."""

    def __init__(self, path, pieces, counter=None):
        self._file = open(path, "rb")
        self._pieces = list(pieces)
        self._counter = counter

    def read(self, size=-1):
        while self._pieces:
            begin, end = self._pieces[0]
            if begin >= end:
                self._pieces.pop(0)
                continue
            count = end - begin if size is None or size < 0 else min(size, end - begin)
            self._file.seek(begin)
            data = self._file.read(count)
            if not data:        # the file shrank meanwhile: the parser sees it end
                self._pieces = []
                return b""
            self._pieces[0] = (begin + len(data), end)
            if self._counter is not None:
                with self._counter.get_lock():
                    self._counter.value += len(data)
            return data
        return b""

    def close(self):
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


_counter = None


def _start_worker(counter):
    global _counter
    _counter = counter
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # the parent stops the pool


def _verify_part(path, size, prefix_end, part, suffix_start, options):
    """Verify one part in this (worker) process; what the parent needs to merge."""
    from .verify import _load_backend, _verify_with
    pieces = ((0, prefix_end), part, (suffix_start, size))
    counted = [True]

    def opener():       # the midpoints' second reading is not counted again
        counter = _counter if counted[0] else None
        counted[0] = False
        return _Spliced(path, pieces, counter)
    report, verifier = _verify_with(_load_backend(False), path, opener=opener, partial=True,
                                    **dict(options, progress=None))
    return {"failures": report.failures, "tensors": report.tensors,
            "elements": report.elements, "mode": verifier.mode,
            "detected": report.float_format_detected, "floats": report.floats,
            "narrow": verifier.narrow_floats, "overflow": verifier.integer_overflow,
            "seen": verifier.seen_params, "meta_keys": verifier.meta_keys,
            "checkpoint_keys": verifier.checkpoint_keys}


def _run_parts(pool, counter, path, size, parts, prefix_end, suffix_start, options):
    """Each part verified on the pool; their results, in order. A worker's exception (a
    CheckpointError, say) is raised here."""
    shown = None
    if options.get("progress"):
        shown = progress_for(options["progress"], size, "bytes", "verify: ")
    try:
        pending = pool.starmap_async(
            _verify_part, [(path, size, prefix_end, part, suffix_start, options)
                           for part in parts])
        shown_bytes = 0
        while not pending.ready():
            pending.wait(0.5)
            if shown is not None:
                now = min(counter.value, size)
                shown.update(now - shown_bytes)
                shown_bytes = now
        return pending.get()
    finally:
        if shown is not None:
            shown.close()


def _merge(report, backend, size, results, options):
    """The one-process report, when the parts prove it; else None."""
    if any(r["failures"] or r["overflow"] for r in results):
        return None
    modes = {r["mode"] for r in results} - {None}
    if len(modes) > 1:
        return None
    seen = [key for r in results for key in r["seen"]]
    if len(set(seen)) != len(seen):
        return None         # a key in two parts: one process words the duplicate
    for expected in ("meta_keys", "checkpoint_keys"):
        # each part checked that its keys are in meta and the checkpoint; together they
        # must be all of them (else one process names the missing)
        if any(r[expected] is not None and r[expected] != set(seen) for r in results):
            return None
    report.backend = backend.__name__.rsplit(".", 1)[-1]
    report.bytes = size
    report.tensors = sum(r["tensors"] for r in results)
    report.elements = sum(r["elements"] for r in results)
    report.floats = any(r["floats"] for r in results)
    report.float_format_detected = any(r["detected"] for r in results)
    mode = modes.pop() if modes else options.get("float_format")
    if mode is None and any(r["narrow"] for r in results):
        mode = "exact"
    report.float_format = mode
    return report

