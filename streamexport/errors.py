"""Exception classes of streamexport.

Every error the tool reports on purpose is a ``StreamExportError``; the CLI prints
``streamexport: <message>`` for it and exits 1. The C core returns a status code and its
glue raises exactly one class per status (see csrc/_speedups.c), so the category of a
failure survives the trip through C.
"""


class StreamExportError(Exception):
    """Base class of every error streamexport raises on purpose."""


# ---- input -------------------------------------------------------------------------

class CheckpointError(StreamExportError):
    """The checkpoint cannot be read, is not a checkpoint, or holds something we refuse."""


class LayoutError(CheckpointError):
    """The checkpoint's structure does not give one clear state_dict (wrappers, --key)."""


class NameCollisionError(CheckpointError):
    """Two tensor names are equal after the prefix rules."""


class UnsupportedTensorError(CheckpointError):
    """A tensor whose kind or dtype has no JSON form (complex, sparse, quantized, meta)."""


# ---- formatting (raised by the C core and its Python twin alike) -------------------

class FormatError(StreamExportError):
    """Base class of the formatter's errors."""


class NonFiniteError(FormatError, ValueError):
    """A NaN or infinity met under ``nonfinite="error"``.

    ``index`` is the flat (row-major) index of the first offending element in the tensor;
    the exporter adds the tensor's name and the count of non-finite values.
    """

    def __init__(self, message, index=None):
        super().__init__(message)
        self.index = index


class BufferSizeError(FormatError, ValueError):
    """A buffer's length does not match the element count and dtype it was given with,
    or an output buffer is smaller than the contract requires."""


class UnsupportedDtypeError(FormatError, TypeError):
    """The formatter does not know this dtype name."""


class ShapeError(FormatError, ValueError):
    """A shape, start or count that does not describe a range of a tensor
    (negative dimensions, a product that overflows 64 bits, a range past the end)."""


# ---- output and verification --------------------------------------------------------

class OutputError(StreamExportError):
    """The output cannot be written (missing directory, no space, size limit, ...)."""


class VerifyError(StreamExportError):
    """The output does not match its contract or its checkpoint."""
