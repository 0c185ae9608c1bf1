"""The number formatter: one chunk of a tensor's raw buffer -> JSON text.

Two implementations share one signature:

    format_chunk(data, dtype, shape, start, count, float_format="exact", nonfinite="error") -> bytes

* ``streamexport._speedups.format_chunk`` -- the C core (csrc/), GIL released while it formats
  (a chunk of 4,096 elements or more: a smaller one takes microseconds and keeps it).
* ``streamexport._native.format_chunk``   -- the pure-Python twin, the reference and test oracle.

The implementation is picked once, at import: the C core when it was built, unless the
environment sets ``STREAMEXPORT_DISABLE_SPEEDUPS=1``. ``STREAMEXPORT_REQUIRE_SPEEDUPS=1``
makes a missing C core an ImportError instead of a silent slow path.

Contract of ``format_chunk`` (both implementations, byte for byte):

``data``
    A C-contiguous object with the buffer protocol holding exactly ``count`` elements of
    ``dtype`` in native byte order: ``len(memoryview(data).cast("B")) == count * itemsize``.
    bfloat16 elements are their 16-bit patterns, float8 elements their 8-bit patterns,
    bool elements one byte each (0 or 1; any non-zero byte is true).
``dtype``
    One of DTYPES (torch's names without the ``torch.`` prefix).
``shape``
    The whole tensor's shape, a sequence of non-negative ints (``()`` for a 0-d tensor).
``start``, ``count``
    The chunk is the elements with flat, row-major indices ``[start, start + count)``.
``float_format``
    ``"exact"``: every float is ``repr(float(x))`` of the element widened to float64 -- what
    ``json.dumps(tensor.tolist())`` writes. ``"shortest"``: the shortest text that rounds
    back to the same bits at the element's own dtype: the fewest significant digits (closest
    to the value when several qualify), laid out by the rules of Python's repr, unless the
    exact token is shorter text (a power of ten padded with zeros: bfloat16 9984 is
    ``9984.0``, not ``10000.0``); float64 and non-floats are unaffected.
``nonfinite``
    For NaN and +-infinity: ``"error"`` raises NonFiniteError whose ``index`` is the flat index
    in the tensor of the first one; ``"null"`` writes ``null``; ``"string"`` writes ``"NaN"``,
    ``"Infinity"``, ``"-Infinity"`` (with the quotes); ``"literal"`` writes ``NaN``,
    ``Infinity``, ``-Infinity`` as Python's json module does (not JSON). The sign of a NaN is
    ignored.

The text returned is exactly the slice of ``json.dumps(t.tolist(), separators=(",", ":"))``
that belongs to these elements, so consecutive chunks concatenate into the whole document:
the chunk at ``start == 0`` begins with the ``ndim`` opening brackets; every element after the
tensor's first is preceded by its separator (``"]" * m + "," + "[" * m`` where ``m`` is the
number of dimensions that close before it); the chunk that ends at the last element ends
with the ``ndim`` closing brackets. A 0-d tensor is its bare token. An empty tensor (some
dimension 0) is formatted by one call with ``start == count == 0`` and gives the nested
empty lists of ``tolist()`` (``(2, 0)`` -> ``[[],[]]``, ``(0, 3)`` -> ``[]``).

A chunk with ``count == 0`` of a non-empty tensor is ``b""`` (brackets belong to elements).

Errors, checked in this order: UnsupportedDtypeError (unknown dtype), ValueError (unknown
float_format or nonfinite), ShapeError (a dimension outside 0..2**63-1, an element count over
2**63-1, a range outside the tensor), BufferSizeError (a buffer that is not C-contiguous, or
whose length is not count * itemsize); NonFiniteError while formatting.
"""
import os

from .dtypes import DTYPES, FLOAT_DTYPES, FLOAT_FORMATS, ITEMSIZE, NONFINITE_POLICIES


def _truthy(name):
    return os.environ.get(name, "") not in ("", "0")


def _pick():
    if not _truthy("STREAMEXPORT_DISABLE_SPEEDUPS"):
        try:
            from . import _speedups
        except ImportError:
            if _truthy("STREAMEXPORT_REQUIRE_SPEEDUPS"):
                raise
        else:
            return _speedups.format_chunk, "c"
    from . import _native
    return _native.format_chunk, "python"


format_chunk, IMPLEMENTATION = _pick()

__all__ = [
    "format_chunk", "IMPLEMENTATION", "DTYPES", "ITEMSIZE", "FLOAT_DTYPES",
    "FLOAT_FORMATS", "NONFINITE_POLICIES",
]
