"""From a torch.Tensor to the raw, contiguous buffers the formatter reads.

This module owns the one place where tensors become bytes:
* ``formatter_dtype`` names a tensor's dtype for the formatter (or refuses the tensor);
* ``iter_chunks`` walks a tensor in row-major order as contiguous blocks of at most
  ``chunk_elements`` elements, copying only one block at a time when the tensor is not
  contiguous (transposed, strided, expanded), never the whole tensor; ``iter_chunk_data``
  gives the same chunks as the formatter's buffers;
* ``release_pages`` tells the kernel that pages of a file mapping already written are not
  needed any more, so resident memory does not grow with the checkpoint; ``PagesBehind``
  does it for a contiguous tensor chunk by chunk, a few megabytes at a time.
"""
import mmap

import torch

from ._libc import madvise as _madvise
from .errors import UnsupportedTensorError

_FORMATTER_DTYPE = {
    torch.float64: "float64",
    torch.float32: "float32",
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
    torch.int8: "int8",
    torch.int16: "int16",
    torch.int32: "int32",
    torch.int64: "int64",
    torch.uint8: "uint8",
    torch.bool: "bool",
}
# torch has had the unsigned 16/32/64-bit dtypes (and numpy views of them) since 2.3
_FLOAT8 = ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu")
for _name in _FLOAT8 + ("uint16", "uint32", "uint64"):
    if hasattr(torch, _name):
        _FORMATTER_DTYPE[getattr(torch, _name)] = _name

# numpy has no bfloat16 or float8: the formatter reads their bit patterns.
_BITS_VIEW = dict({"bfloat16": torch.int16}, **{name: torch.uint8 for name in _FLOAT8})

# 65,536 elements make about 1.3 MB of float32 text: small enough to be still in the CPU's
# cache when the writer copies it into the page cache (that copy costs twice as much from
# a 5 MB chunk), large enough that the Python work per chunk stays a few percent.
DEFAULT_CHUNK_ELEMENTS = 1 << 16


def formatter_dtype(tensor, name="tensor"):
    """The formatter's dtype name for ``tensor``; UnsupportedTensorError if it has no JSON form."""
    if tensor.is_sparse or tensor.layout != torch.strided:
        raise UnsupportedTensorError(f"{name}: sparse tensors ({tensor.layout}) are not supported")
    if tensor.is_quantized:
        raise UnsupportedTensorError(f"{name}: quantized tensors ({tensor.dtype}) are not supported")
    if tensor.is_meta or tensor.device.type == "meta":
        raise UnsupportedTensorError(f"{name}: a meta tensor has no data to export")
    dtype = _FORMATTER_DTYPE.get(tensor.dtype)
    if dtype is None:
        raise UnsupportedTensorError(f"{name}: dtype {tensor.dtype} is not supported")
    return dtype


def _contiguous_blocks(tensor, chunk_elements):
    """Contiguous tensors covering ``tensor`` in row-major order, each <= chunk_elements."""
    if tensor.is_contiguous():
        flat = tensor.reshape(-1)
        for begin in range(0, flat.numel(), chunk_elements):
            yield flat[begin:begin + chunk_elements]
        return
    rows = tensor.shape[0]
    row_size = tensor.numel() // rows if rows else 0
    if row_size == 0:
        return
    if row_size <= chunk_elements:
        step = chunk_elements // row_size
        for begin in range(0, rows, step):
            yield tensor[begin:begin + step].contiguous().reshape(-1)
    else:
        for index in range(rows):
            yield from _contiguous_blocks(tensor[index], chunk_elements)


def iter_chunks(tensor, dtype=None, chunk_elements=DEFAULT_CHUNK_ELEMENTS):
    """Yield ``(start, block)`` covering ``tensor`` in row-major order.

    ``block`` is a 1-D contiguous torch tensor (a view when ``tensor`` is contiguous) and
    ``start`` the flat index of its first element. Use ``as_buffer`` to hand it to the
    formatter. 0-d tensors give one block of one element; empty tensors give none.
    """
    dtype = dtype or formatter_dtype(tensor)
    tensor = tensor.resolve_conj().resolve_neg()
    if tensor.dim() == 0:
        tensor = tensor.reshape(1)
    start = 0
    for block in _contiguous_blocks(tensor, max(1, chunk_elements)):
        yield start, block
        start += block.numel()


def iter_chunk_data(tensor, dtype, chunk_elements=DEFAULT_CHUNK_ELEMENTS):
    """Yield ``(start, data)``: the chunks of ``iter_chunks``, each as ``as_buffer`` gives it.

    A contiguous tensor becomes one numpy view sliced per chunk: a numpy slice costs a
    fraction of a torch view, which counts when chunks are small and many.
    """
    tensor = tensor.resolve_conj().resolve_neg()
    if not tensor.is_contiguous():
        for start, block in iter_chunks(tensor, dtype, chunk_elements):
            yield start, as_buffer(block, dtype)
        return
    flat = as_buffer(tensor.reshape(-1), dtype)
    step = max(1, chunk_elements)
    for start in range(0, len(flat), step):
        yield start, flat[start:start + step]


def as_buffer(block, dtype):
    """A numpy view (no copy) of a contiguous 1-D block, in the formatter's element layout."""
    bits = _BITS_VIEW.get(dtype)
    if bits is not None:
        block = block.view(bits)
    return block.numpy()


# ---- page release -------------------------------------------------------------------

_PAGE = mmap.PAGESIZE
_MADV_DONTNEED = 4


class PagesBehind:
    """Releases the pages of a contiguous, file-mapped tensor as the export passes them.

    ``passed(end)`` says elements ``[0, end)`` are written; pages wholly behind them are
    released once at least ``step`` bytes have gathered (and at the tensor's end), so a
    tensor cut into many small chunks costs a few madvise calls, not one per chunk.
    """

    def __init__(self, tensor, step=4 << 20):
        self._address = tensor.data_ptr()
        self._itemsize = tensor.element_size()
        self._end = self._address + tensor.numel() * self._itemsize
        self._done = self._address
        self._step = step

    def passed(self, end):
        address = self._address + end * self._itemsize
        if address - self._done >= self._step or address >= self._end:
            release_pages(self._done, address - self._done)
            self._done = address // _PAGE * _PAGE    # a page cut in two goes next time


def release_pages(address, nbytes):
    """Drop the whole pages inside ``[address, address + nbytes)`` from this process.

    Only for read-only *file* mappings (torch.load(mmap=True), safetensors maps): there
    MADV_DONTNEED only forgets pages, which fault back in from the file if read again. On
    anonymous memory it would zero the data, so callers must know the memory is a mapping.
    """
    if _madvise is None or nbytes <= 0:
        return
    first = (address + _PAGE - 1) // _PAGE * _PAGE
    last = (address + nbytes) // _PAGE * _PAGE
    if last > first:
        _madvise(first, last - first, _MADV_DONTNEED)
