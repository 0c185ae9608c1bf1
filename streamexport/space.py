"""Will the output fit? Its size, foreseen before the first byte, against the free space.

A large export that fills its disk fails only once the disk is full: for a 14 GB bfloat16
checkpoint, after writing some hundred gigabytes. Its size is predictable, though:

* ``size_bound`` -- an upper bound from the shapes alone (every number as long as its dtype's
  longest token). When the free space exceeds it, nothing more is done: the usual case,
  free of charge.
* ``estimate_size`` -- otherwise, a sampled estimate: ``SAMPLE_BLOCKS`` blocks of
  ``BLOCK_ELEMENTS`` elements spread evenly over all the checkpoint's elements are formatted,
  and each tensor is counted at its own blocks' bytes per element (or, if no block fell in
  it, at its dtype's). About a million elements formatted, a few megabytes read, whatever
  the checkpoint's size; within a percent or two of the real size on weights.

``check_space`` refuses an export whose estimate exceeds the free space by more than
``MARGIN``, so that a sampling error cannot refuse an output that would have fit.
"""
import math
import os
import stat

import orjson

from . import formatter
from .errors import OutputError
from .tensors import as_buffer, iter_chunks

SAMPLE_BLOCKS = 256
BLOCK_ELEMENTS = 4096
MARGIN = 1.02

# The longest token of each dtype, separator included: a float is repr of a float64 (at most
# 24 characters: -2.2250738585072014e-308), or a non-finite spelling (at most "-Infinity"
# with its quotes, 11).
_LONGEST_INT = {"int8": 4, "uint8": 3, "int16": 6, "uint16": 5, "int32": 11, "uint32": 10,
                "int64": 20, "uint64": 20, "bool": 5}
_LONGEST_FLOAT = 24


def free_bytes(directory):
    """Bytes an unprivileged writer may still put in ``directory``'s file system; None if
    the system does not say (some FUSE and network file systems report no blocks at all)."""
    try:
        info = os.statvfs(directory)
    except (AttributeError, OSError):
        return None
    if info.f_blocks == 0 or info.f_frsize == 0:
        return None
    return info.f_bavail * info.f_frsize


def _lists(shape):
    """How many JSON arrays tolist() of this shape makes (each needs [ ] and a comma)."""
    return sum(math.prod(shape[:depth]) for depth in range(len(shape)))


def _key_bytes(entries):
    """The "name": parts of the params object, with the commas between tensors."""
    return sum(len(orjson.dumps(entry.name)) + 1 for entry in entries) + max(0, len(entries) - 1)


def size_bound(entries, header_bytes):
    """At least the document's size in bytes: every number at its dtype's longest."""
    total = header_bytes + _key_bytes(entries) + 2
    for entry in entries:
        longest = _LONGEST_INT.get(entry.dtype, _LONGEST_FLOAT) + 1
        total += math.prod(entry.shape) * longest + 3 * _lists(entry.shape)
    return total


def estimate_size(entries, header_bytes, float_format):
    """The document's size in bytes, estimated from formatted samples (see the module)."""
    counts = [math.prod(entry.shape) for entry in entries]
    total = sum(counts)
    sampled = {}            # entry index -> [bytes, elements] of its blocks
    if total:
        # the pure-Python twin formats ~100x slower than the C core: fewer blocks there
        most = SAMPLE_BLOCKS if formatter.IMPLEMENTATION == "c" else SAMPLE_BLOCKS // 16
        blocks = min(most, -(-total // BLOCK_ELEMENTS))
        positions = iter(int((j + 0.5) * total / blocks) for j in range(blocks))
        position = next(positions)
        begin = 0
        for index, count in enumerate(counts):
            end = begin + count
            while position is not None and position < end:
                _add(sampled, index, _sample(entries[index], position - begin, float_format))
                position = next(positions, None)
            begin = end
    by_dtype = {}
    for index, (nbytes, elements) in sampled.items():
        pooled = by_dtype.setdefault(entries[index].dtype, [0, 0])
        pooled[0] += nbytes
        pooled[1] += elements
    size = header_bytes + _key_bytes(entries) + 2
    for index, (entry, count) in enumerate(zip(entries, counts)):
        if count == 0:
            size += empty_text_bytes(entry.shape)
            continue
        own = sampled.get(index)
        if own is None:
            name = entry.dtype
            if name not in by_dtype:      # no block fell in a tensor of this dtype: take one
                by_dtype[name] = list(_sample(entry, 0, float_format))
            own = by_dtype[name]
        size += round(count * own[0] / own[1])
    return size


def empty_text_bytes(shape):
    """The length of tolist()'s text for a shape with a 0 in it: its arrays down to the
    first empty dimension, each "[]", and the commas between siblings ((2, 0): [[],[]])."""
    depth = list(shape).index(0)
    arrays = [math.prod(shape[:d]) for d in range(depth + 1)]
    return 2 * sum(arrays) + sum(b - a for a, b in zip(arrays, arrays[1:]))


def _add(sampled, index, sample):
    nbytes, elements = sample
    found = sampled.setdefault(index, [0, 0])
    found[0] += nbytes
    found[1] += elements


def _sample(entry, offset, float_format):
    """(bytes, elements) of the text of a block of the entry's tensor around ``offset``."""
    tensor = entry.tensor()
    dtype = entry.dtype
    shape = tuple(tensor.shape)
    count = tensor.numel()
    size = min(BLOCK_ELEMENTS, count)
    if tensor.is_contiguous():
        start = min(max(0, offset - size // 2), count - size)
        block = tensor.reshape(-1)[start:start + size]
    else:   # a slice of a strided tensor would be a copy of all of it: its first block
        start, block = next(iter_chunks(tensor, dtype, size))
    data = as_buffer(block.contiguous(), dtype)
    # "null" for a NaN: under "error" the export stops there anyway
    text = formatter.format_chunk(data, dtype, shape, start, len(data), float_format, "null")
    return len(text), len(data)


def check_space(target, entries, head, float_format):
    """Raise OutputError if the document will clearly not fit beside ``target``.

    ``head()`` gives the document's text before the first tensor (called only when a check
    is made). Only for a target that will be a new regular file: stdout, a device or a FIFO
    is written in place, and a missing directory is the writer's error to report."""
    if target == "-":
        return
    path = os.path.abspath(target)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return
    except FileNotFoundError:
        pass
    except OSError:
        return
    directory = os.path.dirname(path)
    free = free_bytes(directory)
    if free is None:
        return
    header_bytes = len(head())
    if size_bound(entries, header_bytes) <= free:
        return
    needed = estimate_size(entries, header_bytes, float_format)
    if needed > free * MARGIN:
        raise OutputError(f"{target}: the output needs about {_human(needed)} and "
                          f"{directory} has {_human(free)} free (--no-space-check to try anyway)")


def _human(nbytes):
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} bytes"
