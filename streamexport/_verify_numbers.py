"""The numbers side of ``streamexport.verify``: dtype tables, rounding a float64 to a
narrower float format exactly, the exact decision for midpoints, the "shortest text" test used
to detect the float format, and the checkpoint's elements widened for comparison.
"""
from decimal import Decimal

import numpy as np

from .tensors import as_buffer, iter_chunks, release_pages

_U64 = np.uint64

# precision bits (with the implicit one), minimum normal exponent, largest finite value
_FLOAT_FORMATS = {
    "float64": None,
    "float32": (24, -126, float.fromhex("0x1.fffffep127")),
    "float16": (11, -14, 65504.0),
    "bfloat16": (8, -126, float.fromhex("0x1.fep127")),
    "float8_e4m3fn": (4, -6, 448.0),
    "float8_e5m2": (3, -14, 57344.0),
    "float8_e4m3fnuz": (4, -7, 240.0),
    "float8_e5m2fnuz": (3, -15, 57344.0),
    "float8_e8m0fnu": (1, -127, 2.0 ** 127),    # no subnormals, no zero, no sign: see below
}
_INT_RANGES = {
    "int8": (-(1 << 7), (1 << 7) - 1), "int16": (-(1 << 15), (1 << 15) - 1),
    "int32": (-(1 << 31), (1 << 31) - 1), "int64": (-(1 << 63), (1 << 63) - 1),
    "uint8": (0, 255), "uint16": (0, (1 << 16) - 1), "uint32": (0, (1 << 32) - 1),
    "uint64": (0, (1 << 64) - 1),
}
_KINDS = dict({name: "float" for name in _FLOAT_FORMATS},
              **{name: "int" for name in _INT_RANGES}, bool="bool")


def round_to_format(values, dtype):
    """Round float64 ``values`` to ``dtype`` (round half to even, as float64 again).

    Returns ``(rounded, midpoint)``: values past the dtype's range become +-inf, and
    ``midpoint`` marks values that lie exactly halfway between two neighbours of the dtype.
    """
    precision, emin, largest = _FLOAT_FORMATS[dtype]
    with np.errstate(over="ignore", invalid="ignore"):
        _, exponent = np.frexp(values)
        quantum = np.maximum(exponent - 1, emin) - (precision - 1)
        scaled = np.ldexp(values, -quantum)            # exact: scaling by a power of two
        integral = np.rint(scaled)
        midpoint = (scaled - np.floor(scaled)) == 0.5
        rounded = np.ldexp(integral, quantum)
        over = np.abs(rounded) > largest
        if over.any():
            rounded[over] = np.copysign(np.inf, rounded[over])
    if dtype == "float8_e8m0fnu":
        # below its lowest value every positive number rounds to it; zero and the negative
        # ones have no pattern but the NaN
        rounded = np.where(values > 0, np.maximum(rounded, 2.0 ** -127), np.nan)
    elif dtype.endswith("fnuz"):
        rounded[rounded == 0] = 0.0         # no -0: its pattern is the NaN
    return rounded, midpoint


def _decide_midpoint(decimal, value, dtype):
    """Round the exact decimal token ``decimal`` to ``dtype`` when float64 gave the midpoint
    ``value``: above it in magnitude rounds away from zero, below it towards, on it to even."""
    precision, emin, largest = _FLOAT_FORMATS[dtype]
    magnitude = abs(float(value))
    _, exponent = np.frexp(magnitude)
    quantum = max(int(exponent) - 1, emin) - (precision - 1)
    low = float(np.floor(np.ldexp(magnitude, -quantum)))
    exact = Decimal(decimal).copy_abs()        # abs() would round to the context precision
    middle = Decimal(magnitude)
    if exact > middle:
        chosen = low + 1
    elif exact < middle:
        chosen = low
    else:
        chosen = low if low % 2 == 0 else low + 1
    result = float(np.ldexp(chosen, quantum))
    if result > largest:
        result = float("inf")
    return float(np.copysign(result, value))


def _is_shortest_text(values, dtype):
    """Which float64 ``values`` are exactly the value of the shortest text (the export's
    "shortest" format) of their own rounding to ``dtype``."""
    import torch

    from . import formatter
    rounded, _ = round_to_format(values, dtype)
    finite = np.isfinite(rounded)
    result = np.zeros(len(values), dtype=bool)
    if not finite.any():
        return result
    elements = torch.from_numpy(np.ascontiguousarray(rounded[finite]))
    elements = elements.to(getattr(torch, dtype))
    if dtype in ("bfloat16",):
        buffer = elements.view(torch.int16).numpy()
    elif dtype.startswith("float8"):
        buffer = elements.view(torch.uint8).numpy()
    else:
        buffer = elements.numpy()
    text = formatter.format_chunk(buffer, dtype, (len(buffer),), 0, len(buffer),
                                  float_format="shortest", nonfinite="null")
    parsed = np.array([float(token) for token in bytes(text)[1:-1].split(b",")])
    result[finite] = parsed.view(_U64) == values[finite].view(_U64)
    return result


_F8_TABLES = {}


def _float8_table(dtype):
    table = _F8_TABLES.get(dtype)
    if table is None:
        import torch
        bits = torch.arange(256, dtype=torch.int32).to(torch.uint8)
        table = bits.view(getattr(torch, dtype)).to(torch.float64).numpy().copy()
        _F8_TABLES[dtype] = table
    return table


def widen(buffer, dtype):
    """A formatter buffer (``tensors.as_buffer``) as float64 / int64 (uint64 for uint64) /
    bool for comparison."""
    kind = _KINDS[dtype]
    if kind == "bool":
        return buffer.astype(np.bool_)
    if kind == "int":
        return buffer.astype(np.uint64 if dtype == "uint64" else np.int64)
    if dtype == "float64":
        return buffer
    if dtype in ("float32", "float16"):
        return buffer.astype(np.float64)
    if dtype == "bfloat16":
        bits = buffer.view(np.uint16).astype(np.uint32) << np.uint32(16)
        return bits.view(np.float32).astype(np.float64)
    return _float8_table(dtype)[buffer.view(np.uint8)]


class _Cursor:
    """The elements of one checkpoint tensor, taken in order, a chunk at a time."""

    def __init__(self, entry, chunk_elements):
        self.entry = entry
        self.dtype = entry.dtype
        self._tensor = entry.tensor()
        self._storage = self._storage_range(self._tensor) if entry.mapped else None
        self._chunks = iter_chunks(self._tensor, self.dtype, chunk_elements)
        self._block = None
        self._values = None
        self._offset = 0

    @staticmethod
    def _storage_range(tensor):
        storage = tensor.untyped_storage()
        return storage.data_ptr(), storage.data_ptr() + storage.nbytes()

    def _release(self):
        block, self._block = self._block, None
        if block is None or self._storage is None:
            return
        start = block.data_ptr()
        nbytes = block.numel() * block.element_size()
        if self._storage[0] <= start and start + nbytes <= self._storage[1]:
            release_pages(start, nbytes)        # a view of the mapping, not a copy

    def take(self, count):
        parts = []
        while count:
            if self._values is None or self._offset == len(self._values):
                self._release()
                _, block = next(self._chunks)
                self._block = block
                self._values = widen(as_buffer(block, self.dtype), self.dtype)
                self._offset = 0
            step = min(count, len(self._values) - self._offset)
            parts.append(self._values[self._offset:self._offset + step])
            self._offset += step
            count -= step
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts)

    def close(self):
        self._release()
        self._values = None
        self._chunks = None
        self._tensor = None
