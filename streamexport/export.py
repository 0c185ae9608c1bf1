"""The export pipeline: checkpoint -> ordered JSON text -> atomic file.

One direction only: ``open_checkpoint`` gives the sorted tensor entries; each tensor is cut
into contiguous chunks (``tensors.iter_chunk_data``), small tensors batched instead
(``_BatchJob``); ``threads`` threads (this one among
them, see ``ordered.run_in_order``) format chunks (the C core releases the GIL) into output
buffers reused from chunk to chunk, and write them in document order as soon as they are
next, dropping the pages of the mapping passed. At most ``4 * threads`` chunks are in
flight, so memory is bounded by a few chunk buffers whatever the size of a tensor or of
the checkpoint.
"""
import dataclasses
import math
import time
import warnings

import orjson
import torch

from . import formatter
from ._cpus import usable_cpu_count
from .buffers import BufferPool
from .errors import CheckpointError, FormatError, NonFiniteError, UnsupportedTensorError
from .ordered import run_in_order
from .progress import check_kind, progress_for
from .sources import open_checkpoint
from .space import check_space
from .tensors import (DEFAULT_CHUNK_ELEMENTS, PagesBehind, formatter_dtype, iter_chunk_data,
                      iter_chunks, release_pages)
from .writer import AtomicOutput

if formatter.IMPLEMENTATION == "c":
    from ._speedups import chunk_capacity, format_into
else:   # the pure-Python twin returns new bytes per chunk
    chunk_capacity = format_into = None


@dataclasses.dataclass
class ExportReport:
    """What an export did."""
    output: str
    tensors: int = 0
    elements: int = 0
    bytes_written: int = 0
    seconds: float = 0.0
    skipped: list = dataclasses.field(default_factory=list)
    warnings: list = dataclasses.field(default_factory=list)

    def summary(self):
        rate = self.bytes_written / self.seconds / 1e6 if self.seconds > 0 else 0.0
        return (f"wrote {self.output}: {self.tensors} tensors, {self.elements:,} elements, "
                f"{self.bytes_written:,} bytes in {self.seconds:.2f} s ({rate:.1f} MB/s)")


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, not {value!r}")


def export(src, dst, *, key=None, keep_prefix=False, strip_prefixes=(), include=(), exclude=(),
           no_meta=False, strict=False, unsafe_load=False, safe_globals=(),
           float_format="exact", nonfinite="error", threads=None, progress=None,
           chunk_elements=DEFAULT_CHUNK_ELEMENTS, fsync=True, space_check=True):
    """Export the checkpoint at ``src`` to TorchLean JSON at ``dst`` (``"-"``: stdout).

    Options mirror the command line (``streamexport export --help``); ``space_check=False``
    is ``--no-space-check``: start even when the output is foreseen not to fit;
    ``progress`` is None, "bar" (a tqdm bar; True means it too) or "log" (a line to stderr
    every 30 s, for CI logs). Returns an
    ExportReport; raises a StreamExportError subclass on bad input or output, after which
    no new file exists at ``dst`` and an existing one is untouched.
    """
    _check_choice("float_format", float_format, formatter.FLOAT_FORMATS)
    _check_choice("nonfinite", nonfinite, formatter.NONFINITE_POLICIES)
    progress = check_kind(progress)
    threads = usable_cpu_count() if threads is None else int(threads)
    if threads < 1:
        raise ValueError(f"threads must be at least 1, not {threads}")
    started = time.perf_counter()
    report = ExportReport(output=str(dst))
    # The CRC-32 pass over the tensor data runs on a thread of its own beside torch.load,
    # until the writer claims the records its tensors cover whole (_DocumentWriter.pieces);
    # the output waits for it before it is published (see AtomicOutput's before_publish).
    # One thread: a second one made torch.load, which holds the GIL, wait longer (more
    # threads than cores), and that delays the first chunk more than it saves.
    with open_checkpoint(src, key=key, keep_prefix=keep_prefix, strip_prefixes=strip_prefixes,
                         include=include, exclude=exclude, strict=strict,
                         unsafe_load=unsafe_load, safe_globals=safe_globals,
                         crc_threads=1) as checkpoint:
        _check_names_encode(checkpoint)
        _check_empty_tensors(checkpoint)
        if space_check:
            check_space(dst, checkpoint.entries,
                        lambda: _document_head(checkpoint.entries, no_meta), float_format)
        report.skipped = list(checkpoint.skipped)
        report.warnings = list(checkpoint.warnings)
        bar = None
        if progress:
            bar = progress_for(progress, sum(math.prod(entry.shape)
                                             for entry in checkpoint.entries))
        try:
            with BufferPool() as buffers, \
                    AtomicOutput(dst, fsync=fsync, before_publish=checkpoint.check_data) as out:
                writer = _DocumentWriter(checkpoint, float_format, nonfinite, chunk_elements,
                                         buffers)
                _write_in_order(writer.pieces(no_meta, bar), out, threads)
        except (FormatError, CheckpointError):
            # Corrupt data explains a failure made from the data (a NaN a bit flip made, say);
            # an output error is reported at once, without waiting for the check.
            corrupt = checkpoint.data_error()
            if corrupt is not None:
                raise corrupt from None
            raise
        finally:
            if bar is not None:
                bar.close()
        report.tensors = len(checkpoint.entries)
        report.elements = writer.elements
        report.bytes_written = out.bytes_written
    report.seconds = time.perf_counter() - started
    return report


def _check_names_encode(checkpoint):
    """A name with a lone surrogate has no UTF-8 form: refuse it before any output exists."""
    for entry in checkpoint.entries:
        try:
            entry.name.encode("utf-8")
        except UnicodeEncodeError:
            raise CheckpointError(f"{entry.file}: tensor name {entry.name!r} is not valid Unicode "
                                  "(a lone surrogate), so JSON cannot hold it") from None


# An empty tensor is one piece of text, nested empty lists as tolist() gives them: (2, 0)
# is [[],[]]. A few million lists are plausible; (2**62, 0) is a valid shape but no file.
MAX_EMPTY_LISTS = 1 << 24


def _check_empty_tensors(checkpoint):
    """An empty tensor whose nested empty lists would not fit in memory: refuse it now."""
    for entry in checkpoint.entries:
        if 0 not in entry.shape:
            continue
        lists = math.prod(entry.shape[:entry.shape.index(0)])
        if lists > MAX_EMPTY_LISTS:
            raise UnsupportedTensorError(
                f"{entry.file}: tensor {entry.name!r} has shape {list(entry.shape)}: no values, "
                f"but its JSON would be {lists:,} empty lists (at most {MAX_EMPTY_LISTS:,} "
                "are written)")


def _document_head(entries, no_meta):
    """The document up to the first tensor's key: the meta object and '"params":{'."""
    if no_meta:
        return b'{"params":{'
    meta = {entry.name: {"dtype": entry.torch_dtype, "shape": list(entry.shape)}
            for entry in entries}
    return b'{"meta":' + orjson.dumps(meta) + b',"params":{'


def _key_text(name):
    """A JSON string equal to json.dumps(name, ensure_ascii=False)."""
    return orjson.dumps(name)


# A tensor of at most this many elements (and at most one chunk) is formatted in a batch with
# its neighbours (one job, one write: _BatchJob), up to a chunk's elements or BATCH_TENSORS
# tensors a batch.
SMALL_TENSOR_ELEMENTS = 4096
BATCH_TENSORS = 256


class _DocumentWriter:
    """Produces the document as an ordered stream of pieces: literal bytes, or zero-argument
    jobs that return a _Text (the formatting of one chunk, or of a batch of small tensors,
    run on the pool)."""

    def __init__(self, checkpoint, float_format, nonfinite, chunk_elements, buffers):
        self.checkpoint = checkpoint
        self.float_format = float_format
        self.nonfinite = nonfinite
        self.chunk_elements = chunk_elements
        self.buffers = buffers
        self.elements = 0
        self.claims = {}

    def pieces(self, no_meta, bar):
        entries = self.checkpoint.entries
        # The CRC-32 of each record a tensor has to itself is taken over before the first
        # chunk (a check thread still takes the others): each chunk's CRC is computed just
        # after it is formatted, while its bytes are in cache, and added in order once it is
        # written (_ChunkJob).
        self.claims = {entry.name: self.checkpoint.claim_data_check(entry) for entry in entries}
        yield _document_head(entries, no_meta)
        small = min(SMALL_TENSOR_ELEMENTS, self.chunk_elements)
        batch = _BatchJob(self)
        for position, entry in enumerate(entries):
            key = (b"," if position else b"") + _key_text(entry.name) + b":"
            if math.prod(entry.shape) <= small:
                # one chunk (or one literal, when empty), after its key
                for piece in self._tensor_pieces(entry, bar):
                    if isinstance(piece, _ChunkJob):
                        batch.add(key, piece)
                    else:
                        batch.add(key + piece, None)
                    key = b""
                if batch.full():
                    yield batch
                    batch = _BatchJob(self)
                continue
            if batch.parts:
                yield batch
                batch = _BatchJob(self)
            yield key
            yield from self._tensor_pieces(entry, bar)
        if batch.parts:
            yield batch
        yield b"}}"

    def _tensor_pieces(self, entry, bar):
        tensor = entry.tensor()
        dtype = formatter_dtype(tensor, entry.name)
        shape = tuple(tensor.shape)
        total = tensor.numel()
        if total == 0:
            yield formatter.format_chunk(b"", dtype, shape, 0, 0)
            return
        # The pages of a mapped tensor go as the writer passes them; those a non-contiguous
        # tensor was copied from go all at once, after its last chunk is handed out.
        contiguous = tensor.is_contiguous()
        pages = PagesBehind(tensor) if entry.mapped and contiguous else None
        crc = self.claims.get(entry.name)
        for start, data in iter_chunk_data(tensor, dtype, self.chunk_elements):
            yield _ChunkJob(self, entry, tensor, dtype, shape, start, data, pages, crc)
            self.elements += len(data)
            if bar is not None:
                bar.update(len(data))
        if entry.mapped and not contiguous:
            storage = tensor.untyped_storage()
            release_pages(storage.data_ptr(), storage.nbytes())

    def nonfinite_error(self, entry, tensor, error):
        count = 0
        for _, block in iter_chunks(tensor, formatter_dtype(tensor), self.chunk_elements):
            count += int((~torch.isfinite(block.to(torch.float32))).sum())
        index = _multi_index(error.index, tuple(tensor.shape))
        return NonFiniteError(
            f"{entry.file}: tensor {entry.name!r} has {count} non-finite value"
            f"{'s' if count != 1 else ''}, the first at index {list(index)}; "
            "use --nonfinite null|string|literal to write them anyway", error.index)


def _multi_index(flat, shape):
    index = []
    for size in reversed(shape):
        index.append(flat % size if size else 0)
        flat //= size if size else 1
    return tuple(reversed(index))


class _ChunkJob:
    """Formats one chunk; run on a worker thread (the C core releases the GIL)."""

    __slots__ = ("owner", "entry", "tensor", "dtype", "shape", "start", "data", "pages", "crc",
                 "crc_part")

    def __init__(self, owner, entry, tensor, dtype, shape, start, data, pages, crc=None):
        self.owner, self.entry, self.tensor = owner, entry, tensor
        self.dtype, self.shape, self.start, self.data = dtype, shape, start, data
        self.pages, self.crc, self.crc_part = pages, crc, None

    def __call__(self):
        """The chunk's text, as a _Text to write and then hand back."""
        if format_into is None:
            return _Text(self.text())
        buffers = self.owner.buffers
        buffer = buffers.take(self.capacity())
        try:
            length = self.format_into(buffer)
        except BaseException:
            buffers.give_back(buffer)
            raise
        return _Text(memoryview(buffer)[:length], buffer, buffers)

    def capacity(self):
        """The bytes format_into may need (C core only)."""
        return chunk_capacity(self.dtype, self.shape, self.start, len(self.data))

    def format_into(self, out):
        """Format into the writable buffer ``out`` (at least capacity() bytes); returns the
        text's length."""
        return self._format(format_into, out)

    def text(self):
        """The chunk's text as new bytes (without the C core)."""
        return self._format(formatter.format_chunk)

    def _format(self, function, *out):
        owner = self.owner
        data = self.data
        try:
            result = function(*out, data, self.dtype, self.shape, self.start, len(data),
                              owner.float_format, owner.nonfinite)
        except NonFiniteError as error:
            raise owner.nonfinite_error(self.entry, self.tensor, error) from None
        if self.crc is not None:
            # here, on this thread, while the chunk's bytes are in its cache; written() adds
            # it to the record's CRC in order
            self.crc_part = self.crc.part(data)
        return result

    def written(self):
        """Called once the chunk's text is out, chunks in order: add its bytes' CRC to the
        tensor's record check, if claimed, then drop the mapping's pages behind it."""
        if self.crc is not None:
            self.crc.add(self.crc_part)
        if self.pages is not None:
            self.pages.passed(self.start + len(self.data))


class _BatchJob:
    """Small tensors, each after its key, formatted by one job into one buffer and written at
    once: in a checkpoint of many small tensors (20,000 norms of 64 elements, say), the
    pipeline's costs per job -- taking it, ordering it, writing it -- would otherwise be
    most of the time."""

    __slots__ = ("owner", "parts", "elements")

    def __init__(self, owner):
        self.owner = owner
        self.parts = []         # (literal bytes, then a _ChunkJob's text or nothing)
        self.elements = 0

    def add(self, literal, job):
        self.parts.append((literal, job))
        if job is not None:
            self.elements += len(job.data)

    def full(self):
        return self.elements >= self.owner.chunk_elements or len(self.parts) >= BATCH_TENSORS

    def __call__(self):
        if format_into is None:
            return _Text(b"".join(literal + (job.text() if job is not None else b"")
                                  for literal, job in self.parts))
        buffers = self.owner.buffers
        buffer = buffers.take(sum(len(literal) + (job.capacity() if job is not None else 0)
                                  for literal, job in self.parts))
        view = memoryview(buffer)
        at = 0
        try:
            for literal, job in self.parts:
                view[at:at + len(literal)] = literal
                at += len(literal)
                if job is not None:
                    at += job.format_into(view[at:])
            text = view[:at]
        except BaseException:
            view.release()
            buffers.give_back(buffer)
            raise
        view.release()          # the slice keeps the buffer exported until _Text.release
        return _Text(text, buffer, buffers)

    def written(self):
        for _, job in self.parts:
            if job is not None:
                job.written()


class _Text:
    """A chunk's formatted text: bytes, or a view of a pooled buffer to give back after use."""

    __slots__ = ("data", "buffer", "pool")

    def __init__(self, data, buffer=None, pool=None):
        self.data, self.buffer, self.pool = data, buffer, pool

    def release(self):
        if self.buffer is not None:
            self.data.release()     # the view first: a buffer with a view cannot be unmapped
            self.pool.give_back(self.buffer)
            self.buffer = None


def _write_in_order(pieces, out, threads):
    """Format the chunks on ``threads`` threads and write every piece in document order."""

    def work(piece):
        return piece() if isinstance(piece, (_ChunkJob, _BatchJob)) else piece

    def emit(piece, text):
        if not isinstance(piece, (_ChunkJob, _BatchJob)):
            out.write(text)
            return
        try:
            out.write(text.data)
        finally:
            text.release()
        piece.written()

    def discard(piece, text):
        if isinstance(text, _Text):
            text.release()

    # Four chunks a thread (a float32 chunk's buffer is ~1.4 MB): while the first write
    # waits for the checkpoint's CRC check (an output written in place), the other threads
    # keep formatting instead of idling; with two a thread they waited ~15 ms of 0.4 s.
    run_in_order(pieces, work, emit, threads, limit=4 * threads, discard=discard)


def dumps(tensor, *, float_format="exact", nonfinite="error"):
    """The JSON text of one tensor or numpy array, as ``json.dumps(t.tolist(),
    separators=(",", ":")).encode()`` would give it, made by the C core."""
    _check_choice("float_format", float_format, formatter.FLOAT_FORMATS)
    _check_choice("nonfinite", nonfinite, formatter.NONFINITE_POLICIES)
    if not isinstance(tensor, torch.Tensor):
        tensor = _from_numpy(tensor)
    dtype = formatter_dtype(tensor)
    shape = tuple(tensor.shape)
    total = tensor.numel()
    if total == 0:
        return formatter.format_chunk(b"", dtype, shape, 0, 0, float_format, nonfinite)
    # The caller asked for the whole text, so a contiguous tensor is one call.
    chunk = total if tensor.is_contiguous() else DEFAULT_CHUNK_ELEMENTS
    parts = [formatter.format_chunk(data, dtype, shape, start, len(data), float_format, nonfinite)
             for start, data in iter_chunk_data(tensor, dtype, chunk)]
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _from_numpy(array):
    import numpy as np
    array = np.asarray(array)
    if array.dtype.byteorder not in ("=", "|", "<" if np.little_endian else ">"):
        array = array.astype(array.dtype.newbyteorder("="))
    try:
        with warnings.catch_warnings():
            # Read-only arrays are fine here: the formatter never writes to them.
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(array)
    except TypeError:
        raise UnsupportedTensorError(f"dumps: numpy dtype {array.dtype} is not supported") from None
