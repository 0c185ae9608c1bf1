"""Inert stand-ins for the metadata globals that ``weights_only`` loading refuses.

Training checkpoints hold more than tensors: Lightning's hyper-parameters (an
``argparse.Namespace`` or an ``AttributeDict``), numpy scalars and arrays (epoch counters,
RNG states), paths, dates. ``torch.load(weights_only=True)`` refuses every global it does
not know, so such a checkpoint fails even though we only want its tensors.

Rather than allow the real classes and functions (which would run their code), each known
metadata global -- and each global the user names with ``--safe-global module.Name`` -- is
allow-listed under its name as a *stand-in*: a class that accepts any arguments and any
state and only stores them. Nothing of the real type runs and nothing is imported; the
values come back as ``Inert`` objects (or plain dicts, for dict subclasses) and are skipped
as non-tensor entries. Tensors never depend on them.
"""
import re
from contextlib import contextmanager


class Inert:
    """An object standing in for an instance of (or a call to) a refused global."""

    _global = "?"

    def __new__(cls, *args, **kwargs):
        self = object.__new__(cls)
        self.args = args
        self.kwargs = kwargs
        self.state = None
        return self

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state

    def __repr__(self):
        return f"<inert {self._global}>"


class InertDict:
    """A stand-in for a dict subclass: constructing it gives a plain dict.

    The weights_only unpickler sets items only on exact dict types, so an
    ``AttributeDict`` or ``defaultdict`` must come back as a plain ``dict``.
    """

    _global = "?"

    def __new__(cls, *args, **kwargs):
        return {}


_MARK = "inert:"


def stand_in(name, dict_like=False):
    """A fresh stand-in class for the global ``name`` (``module.Name``)."""
    base = InertDict if dict_like else Inert
    cls = type(name.rsplit(".", 1)[-1], (base,), {"_global": name, "__module__": __name__})
    cls.__qualname__ = _MARK + name   # repr(cls) names the global, see dict_like_global()
    return cls


def _numpy_names():
    names = []
    for core in ("numpy.core", "numpy._core"):
        names += [f"{core}.multiarray.scalar", f"{core}.multiarray._reconstruct",
                  f"{core}.numeric._frombuffer", f"{core}.multiarray.dtype"]
    names += ["numpy.dtype", "numpy.ndarray", "numpy.random._pickle.__randomstate_ctor",
              "numpy.random._pickle.__bit_generator_ctor", "numpy.random._pickle.__generator_ctor",
              "numpy.random.mtrand.RandomState"]
    names += [f"numpy.dtypes.{kind}DType" for kind in (
        "Float16", "Float32", "Float64", "LongDouble", "Int8", "Int16", "Int32", "Int64",
        "UInt8", "UInt16", "UInt32", "UInt64", "Bool", "Long", "ULong", "LongLong",
        "ULongLong", "Byte", "UByte", "Short", "UShort", "Int", "UInt", "Str", "Bytes",
        "Object", "Complex64", "Complex128", "DateTime64", "TimeDelta64", "Void")]
    return names


# Globals that only ever carry plain data in the checkpoints we meet.
KNOWN_INERT = tuple(
    ["argparse.Namespace",
     "pathlib.Path", "pathlib.PosixPath", "pathlib.WindowsPath",
     "pathlib.PurePath", "pathlib.PurePosixPath", "pathlib.PureWindowsPath",
     "datetime.datetime", "datetime.date", "datetime.time", "datetime.timedelta",
     "datetime.timezone",
     "torch.torch_version.TorchVersion",
     "builtins.slice", "builtins.range", "builtins.frozenset"]
    + _numpy_names()
)
KNOWN_DICT_LIKE = (
    "collections.defaultdict",
    "lightning.fabric.utilities.data.AttributeDict",
    "lightning_fabric.utilities.data.AttributeDict",
    "lightning.pytorch.utilities.parsing.AttributeDict",
    "pytorch_lightning.utilities.parsing.AttributeDict",
)
# Plain builtin types are themselves inert (list(x) only copies already-loaded data);
# they appear as defaultdict factories.
_BUILTIN_TYPES = {f"builtins.{t.__name__}": t for t in (list, dict, tuple, int, float, str, bool)}

_GLOBAL_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")


def normalize(name):
    """``module.Name`` for a user's --safe-global value (torch prints builtins bare)."""
    name = name.strip()
    if "." not in name:
        name = "builtins." + name
    if not _GLOBAL_NAME.match(name):
        raise ValueError(f"--safe-global {name!r} is not of the form module.Name")
    return name


def dict_like_global(text):
    """The global named in a weights_only 'Can only SETITEM(S) ... but got <class ...>' error."""
    match = re.search(r"SETITEMS? for dict.*but got <class '[\w.]*" + re.escape(_MARK)
                      + r"([\w.]+)'>", text)
    return match.group(1) if match else None


def allow_list(extra=(), dict_like=()):
    """The (stand-in, name) pairs for torch.serialization.safe_globals."""
    pairs = []
    dict_like = set(KNOWN_DICT_LIKE) | set(dict_like)
    for name in sorted(set(KNOWN_INERT) | set(_BUILTIN_TYPES) | set(extra) | dict_like):
        if name in _BUILTIN_TYPES:
            pairs.append((_BUILTIN_TYPES[name], name))
        else:
            pairs.append((stand_in(name, name in dict_like), name))
    return pairs


@contextmanager
def allowed(extra=(), dict_like=()):
    """Allow the known metadata globals and ``extra`` as inert stand-ins, for one load."""
    import torch

    with torch.serialization.safe_globals(allow_list(extra, dict_like)):
        yield
