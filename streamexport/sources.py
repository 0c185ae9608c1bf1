"""Checkpoint sources: a path on disk -> a sorted list of tensors ready to stream.

``open_checkpoint`` does every check that can be done before formatting starts, so that a
bad checkpoint fails before any output exists:

* the file exists, is readable and is a checkpoint (torch zip, legacy torch pickle,
  safetensors, or a directory / ``*.index.json`` of shards);
* the layout gives one clear state_dict (``state_dict``, ``model_state_dict``, raw, a few
  common wrappers, or ``key="a.b"``);
* names after the prefix rules are unique; selection globs; ``strict``;
* every selected tensor has a JSON form (``streamexport.tensors.formatter_dtype``);
* a torch zip's structure and CRC-32s (``streamexport.zipcheck``); with ``crc_threads`` the
  CRC pass over the tensor data runs beside the export instead (which may take over the
  records its tensors cover whole: ``Checkpoint.claim_data_check``), and
  ``Checkpoint.check_data`` gives its verdict before the output is published.

Errors are ``CheckpointError`` subclasses whose message is one line naming the file and the
cause. Warnings torch would print are caught; the useful ones become ``Checkpoint.warnings``.
"""
import fnmatch
import os
import re
import threading
import warnings as _warnings
from dataclasses import dataclass, field
from typing import Callable

from .errors import CheckpointError, LayoutError, NameCollisionError
from .tensors import formatter_dtype
from .zipcheck import DataCheck, check_zip

# TorchLean's adapter unwraps these, in this order, when the value is a dict.
TORCHLEAN_WRAPPERS = ("state_dict", "model_state_dict")
# Further wrappers training code uses; picked only when the top level holds no tensors.
EXTRA_WRAPPERS = ("model", "module", "ema", "model_ema")
DEFAULT_PREFIX = "module."

_ZIP_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class TensorEntry:
    name: str               # final name, after the prefix rules (the JSON key)
    source_name: str        # the key as stored in the checkpoint (for messages)
    dtype: str              # the formatter's dtype name
    torch_dtype: str        # str(tensor.dtype), goes into meta
    shape: tuple            # tuple of ints
    file: str               # the file holding it (for messages)
    mapped: bool            # tensor() is backed by a read-only file mapping
    _get: Callable = field(repr=False, compare=False, default=None)
    # (offset, size) in the file of a torch zip record that holds exactly this tensor's
    # bytes, in order (the tensor is its whole storage), else None: see claim_data_check
    record_span: tuple = field(repr=False, compare=False, default=None)

    def tensor(self):
        """The CPU tensor, zero-copy from the mapping where possible."""
        if self._get is None:
            raise CheckpointError(f"{self.file}: checkpoint is closed ({self.source_name})")
        return self._get()


class Checkpoint:
    """The tensors of one checkpoint (a file or a directory of shards), sorted by name."""

    def __init__(self, path, entries, skipped, warnings, resources=()):
        self.path = path
        self.entries = entries
        self.skipped = skipped
        self.warnings = warnings
        self._resources = list(resources)
        self._data_checks = [r for r in self._resources if isinstance(r, DataCheck)]

    def check_data(self):
        """Wait for the background CRC-32 checks (``crc_threads``); raise what they found."""
        error = self.data_error()
        if error is not None:
            raise error

    def claim_data_check(self, entry):
        """Take over the deferred CRC-32 check of the record holding exactly ``entry``'s
        bytes: a ``RecordCRC`` to ``feed`` those bytes in order (the exporter does, each
        chunk just after formatting it, while it is in cache), or None when the record is
        not the entry's alone or a check thread has it already. A claim never fed to the
        end is checked by ``check_data`` itself."""
        if entry.record_span is None:
            return None
        for check in self._data_checks:
            if check.path == entry.file:
                return check.claim(*entry.record_span)
        return None

    def data_error(self):
        """The CheckpointError a deferred CRC-32 check found, once all are done, or None."""
        for check in self._data_checks:
            error = check.error()
            if error is not None:
                return error
        return None

    def close(self):
        """Drop the loaded objects and unmap what can be unmapped."""
        resources, self._resources = self._resources, []
        for resource in resources:
            close = getattr(resource, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # closing must not mask the caller's error
                    pass
        for entry in self.entries:
            object.__setattr__(entry, "_get", None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        return (f"<Checkpoint {self.path!r}: {len(self.entries)} tensors, "
                f"{len(self.skipped)} skipped>")


# ---- one-line messages --------------------------------------------------------------

def _one_line(text, limit=300):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _fail(path, cause, cls=CheckpointError):
    return cls(f"{path}: {_one_line(cause)}")


def _human_size(nbytes):
    size = float(nbytes)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{int(size)} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024


# ---- finding out what a path is -----------------------------------------------------

def _check_file(path):
    """Raise a clean CheckpointError unless ``path`` is a readable, non-empty regular file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise _fail(path, "no such file or directory") from None
    except OSError as exc:
        raise _fail(path, f"cannot read: {exc.strerror or exc}") from None
    if os.path.isdir(path):
        return "dir"
    if not os.path.isfile(path):
        raise _fail(path, "not a regular file")
    if not os.access(path, os.R_OK):
        raise _fail(path, "cannot read: permission denied")
    if st.st_size == 0:
        raise _fail(path, "empty file, not a checkpoint")
    return "file"


def _sniff(path):
    """'zip', 'legacy', 'safetensors' or a CheckpointError for anything else."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise _fail(path, f"cannot read: {exc.strerror or exc}") from None
    if head.startswith(_ZIP_MAGIC) or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "legacy"     # a pickle stream: torch's legacy format (torch checks its magic)
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    if path.endswith(".safetensors"):
        return "safetensors"
    raise _fail(path, "not a checkpoint: neither a PyTorch zip/pickle file nor a safetensors file")


# ---- torch.load ---------------------------------------------------------------------

_LOAD_LOCK = threading.Lock()
_WEIGHTS_UNPICKLER = re.compile(r"WeightsUnpickler error:(.*?)(?:Check the documentation|$)",
                                re.S)
_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
_BLOCKED_GLOBAL = re.compile(r"unsupported GLOBAL ([\w.]+) whose module ([\w.]+) is blocked")


def _explain_load_error(path, exc, unsafe_load, unsafe_names=()):
    """One line for an exception raised by torch.load."""
    text = str(exc)
    match = _BLOCKED_GLOBAL.search(text)
    if match:
        return _fail(path, f"refused: the pickle calls {match.group(1)} (module {match.group(2)} "
                           "is never allowed; nothing was executed)")
    match = _UNSUPPORTED_GLOBAL.search(text)
    if match:
        name = match.group(1)
        if "." not in name:
            name = "builtins." + name
        if name == "torch.storage._load_from_bytes":
            return _fail(path, "tensors pickled with pickle.dump, not torch.save: they can only be "
                               "read by running pickle code; re-save with torch.save, or pass "
                               "--unsafe-load if you trust the file")
        if name.startswith("torch.nn.modules.") or name.startswith("torch.jit."):
            return _fail(path, f"the file is a whole pickled model ({name}), not a state_dict: "
                               "re-save model.state_dict(), or pass --unsafe-load if you trust "
                               "it (that runs pickle code)")
        names = [name] + sorted(n for n in set(unsafe_names or ()) if n != name)
        flags = " ".join(f"--safe-global {n}" for n in names[:8])
        more = f" (and {len(names) - 8} more)" if len(names) > 8 else ""
        if len(names) == 1:
            which, pronoun = f"the global {name}", "it"
        else:
            which, pronoun = f"the globals {', '.join(names[:8])}", "them"
        return _fail(path, f"refused: the pickle needs {which}{more}, which weights_only "
                           f"loading does not allow; if you trust {pronoun}, "
                           f"pass {flags} (or --unsafe-load, which runs pickle code)")
    if "Creating a Tensor subclass from a class that does not inherit from Tensor" in text:
        return _fail(path, "a tensor of a subclass named by --safe-global cannot be rebuilt from "
                           "an inert stand-in; pass --unsafe-load if you trust the file")
    if "TorchScript" in text:
        return _fail(path, "a TorchScript archive (torch.jit.save), not a torch.save checkpoint")
    if "not in a subdirectory" in text:
        return _fail(path, "a zip archive, but not one written by torch.save")
    missing = re.search(r"failed locating file (\S+): file not found", text) \
        or re.search(r'Expected hasRecord\("([^"]+)"\)', text)
    if missing:
        record = missing.group(1)
        if record == "data.pkl":
            return _fail(path, "a zip archive, but not one written by torch.save (no data.pkl)")
        return _fail(path, f"corrupt checkpoint: record {record} is missing from the archive")
    inner = _WEIGHTS_UNPICKLER.search(text)
    if inner:
        text = inner.group(1).strip()
        operand = re.search(r"Unsupported operand (\d+)", text)
        if operand:
            opcode = int(operand.group(1))
            return _fail(path, f"refused by weights_only loading: pickle opcode {opcode:#x} "
                               "is not supported (a pickle protocol newer than torch.save's "
                               "default 2?); re-save with torch.save's defaults, or pass "
                               "--unsafe-load if you trust the file (that runs pickle code)")
        return _fail(path, f"refused by weights_only loading: {text} (nothing was executed)")
    if "central directory" in text or "failed reading zip archive" in text:
        return _fail(path, "corrupt or truncated zip archive (cannot read its central directory)")
    if "PytorchStreamReader" in text or "zip archive" in text:
        return _fail(path, f"corrupt zip archive: {text}")
    if isinstance(exc, EOFError) or "Ran out of input" in text or "unexpected EOF" in text \
            or "truncated" in text.lower():
        return _fail(path, "truncated checkpoint (the pickle ends early)")
    if "Invalid magic number" in text or "invalid load key" in text:
        return _fail(path, "corrupt checkpoint: not a valid torch pickle")
    if isinstance(exc, MemoryError):
        return _fail(path, "out of memory while loading")
    if isinstance(exc, OSError) and getattr(exc, "strerror", None):
        return _fail(path, f"cannot read: {exc.strerror}")
    kind = type(exc).__name__
    return _fail(path, f"cannot load ({kind}): {text or 'no details'}")


def _unsafe_globals(path, extra, dict_like):
    """Every global the pickle names that is still not allowed (read statically, not run)."""
    import torch
    from . import _safe_globals

    try:
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore")
            with _LOAD_LOCK, _safe_globals.allowed(extra, dict_like):
                names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # only a better message is lost
        return ()
    blocked = ("os.", "posix.", "nt.", "sys.")
    return tuple(n if "." in n else "builtins." + n for n in names if not n.startswith(blocked))


def _torch_load(path, kind, unsafe_load, safe_globals, messages, resources, crc_threads):
    """torch.load with torch's warnings caught; returns (object, mapped). With
    ``crc_threads`` the CRC-32 check of a zip's tensor data starts on that many threads
    (beside torch.load and what follows) and joins ``resources``."""
    import torch
    from . import _safe_globals

    mapped = kind == "zip"
    if kind == "zip":
        data_check = check_zip(path, defer_data=crc_threads > 0)
        if data_check is not None:
            resources.append(data_check.start(crc_threads))
    else:
        size = os.path.getsize(path)
        messages.append(f"{path}: legacy (non-zip) torch checkpoint: it cannot be memory-mapped "
                        f"and is loaded whole, about {_human_size(size)} of memory")
    kwargs = dict(map_location="cpu", weights_only=not unsafe_load)
    if mapped:
        kwargs["mmap"] = True
    try:
        extra = tuple(_safe_globals.normalize(name) for name in safe_globals)
    except ValueError as exc:
        raise _fail(path, str(exc)) from None
    dict_like = set()
    while True:
        try:
            with _warnings.catch_warnings(record=True) as caught:
                _warnings.simplefilter("always")
                if unsafe_load:
                    obj = torch.load(path, **kwargs)
                else:
                    # the allow-list is process-wide state in torch: one load at a time
                    with _LOAD_LOCK, _safe_globals.allowed(extra, dict_like):
                        obj = torch.load(path, **kwargs)
            break
        except CheckpointError:
            raise
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            # a stand-in met dict items: it stands for a dict subclass; load again with
            # that global giving a plain dict (a few rounds at most; mmap makes them cheap)
            name = None if unsafe_load else _safe_globals.dict_like_global(str(exc))
            if name is not None and name not in dict_like and len(dict_like) < 16:
                dict_like.add(name)
                continue
            unsafe_names = ()
            if kind == "zip" and not unsafe_load and _UNSUPPORTED_GLOBAL.search(str(exc)):
                unsafe_names = _unsafe_globals(path, extra, dict_like)
            raise _explain_load_error(path, exc, unsafe_load, unsafe_names) from None
    for warning in caught:
        text = _one_line(warning.message)
        if "weights_only" in text and "FutureWarning" in warning.category.__name__:
            continue
        if "non-writable" in text or "not writable" in text:
            continue    # mmap'd storages are read-only; we never write to them
        if "Detected pickle protocol" in text:
            continue    # it loaded after all; the caution is for torch's developers
        messages.append(f"{path}: torch: {text}")
    return obj, mapped


# ---- layout -------------------------------------------------------------------------

def _is_tensor(value):
    import torch
    return isinstance(value, torch.Tensor)


def _has_tensors(value):
    return isinstance(value, dict) and any(_is_tensor(v) for v in value.values())


def _walk_key(path, obj, key):
    """The dict at ``key`` (dotted path; a key may itself hold dots)."""
    def walk(node, rest, trail):
        if not isinstance(node, dict):
            return None
        if rest in node:
            return node[rest], trail + [rest]
        parts = rest.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            head = ".".join(parts[:cut])
            if head in node:
                found = walk(node[head], ".".join(parts[cut:]), trail + [head])
                if found is not None:
                    return found
        return None

    found = walk(obj, key, [])
    if found is None:
        keys = sorted(str(k) for k in obj) if isinstance(obj, dict) else []
        shown = ", ".join(repr(k) for k in keys[:12]) + (", ..." if len(keys) > 12 else "")
        raise _fail(path, f"--key {key}: no such entry (top-level keys: {shown or 'none'})",
                    LayoutError)
    value, _trail = found
    if not isinstance(value, dict):
        raise _fail(path, f"--key {key}: the entry is a {type(value).__name__}, not a dict of "
                          "tensors", LayoutError)
    return value


def _candidate_keys(obj, prefix="", depth=0):
    """Dotted paths of nested dicts that hold tensors (for suggestions)."""
    found = []
    if depth > 3 or not isinstance(obj, dict):
        return found
    for k, v in obj.items():
        if not isinstance(k, str) or not isinstance(v, dict):
            continue
        dotted = prefix + k
        if _has_tensors(v):
            found.append(dotted)
        else:
            found.extend(_candidate_keys(v, dotted + ".", depth + 1))
    return found


def select_state_dict(path, obj, key=None, messages=None):
    """The state_dict inside a loaded checkpoint object, by the layout rules."""
    if messages is None:
        messages = []
    if not isinstance(obj, dict):
        kind = f"{type(obj).__module__}.{type(obj).__qualname__}"
        raise _fail(path, f"the checkpoint holds a {kind}, "
                          "not a dict (save model.state_dict(), not the model)", LayoutError)
    if key is not None:
        return _walk_key(path, obj, key)
    def others(chosen):
        """Other top-level dicts of tensors (an EMA copy, say) the user may have meant."""
        return [k for k, v in obj.items() if isinstance(k, str) and k != chosen and _has_tensors(v)]

    for wrapper in TORCHLEAN_WRAPPERS:
        if isinstance(obj.get(wrapper), dict):
            for other in others(wrapper)[:4]:
                messages.append(f"{path}: exporting '{wrapper}'; the checkpoint also holds tensors "
                                f"under '{other}' (--key {other} exports those)")
            return obj[wrapper]
    if any(_is_tensor(v) for v in obj.values()):
        for other in others(None)[:4]:
            messages.append(f"{path}: exporting the top-level tensors; the checkpoint also holds "
                            f"tensors under '{other}' (--key {other} exports those)")
        return obj
    candidates = [k for k in EXTRA_WRAPPERS if _has_tensors(obj.get(k))]
    if len(candidates) == 1:
        for other in others(candidates[0])[:4]:
            messages.append(f"{path}: exporting '{candidates[0]}'; the checkpoint also holds "
                            f"tensors under '{other}' (--key {other} exports those)")
        return obj[candidates[0]]
    if len(candidates) > 1:
        listed = "; ".join(f"'{k}' (--key {k})" for k in candidates)
        raise _fail(path, f"ambiguous layout: several dicts of tensors: {listed}", LayoutError)
    nested = _candidate_keys(obj)
    if nested:
        listed = "; ".join(f"'{k}' (--key {k})" for k in nested[:8])
        raise _fail(path, f"no tensors at the top level; dicts of tensors found at: {listed}",
                    LayoutError)
    return obj


# ---- names --------------------------------------------------------------------------

def final_name(name, keep_prefix=False, strip_prefixes=()):
    """The JSON key for a stored name: the ``module.`` rule, then strip_prefixes in order."""
    prefixes = ([] if keep_prefix else [DEFAULT_PREFIX]) + list(strip_prefixes)
    for prefix in prefixes:
        if prefix and name.startswith(prefix):
            name = name[len(prefix):]
    return name


def _selected(name, include, exclude):
    if include and not any(fnmatch.fnmatchcase(name, pattern) for pattern in include):
        return False
    return not any(fnmatch.fnmatchcase(name, pattern) for pattern in exclude)


def _preview(names, limit=5):
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


class _Item:
    """One stored tensor before the name rules: where it is and how to get it."""
    __slots__ = ("source_name", "file", "mapped", "get", "dtype", "torch_dtype", "shape",
                 "record_span")

    def __init__(self, source_name, file, mapped, get, dtype, torch_dtype, shape,
                 record_span=None):
        self.source_name = source_name
        self.file = file
        self.mapped = mapped
        self.get = get
        self.dtype = dtype
        self.torch_dtype = torch_dtype
        self.shape = shape
        self.record_span = record_span


def _file_spans(path):
    """(low, high, file offset of low) of every mapping of ``path`` in this process, from
    /proc/self/maps; None if unknown."""
    # matched by path, not inode: on overlay filesystems the two inodes differ
    try:
        target = os.path.realpath(path)
        spans = []
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split(maxsplit=5)
                if len(fields) < 6 or fields[4] == "0":
                    continue
                name = fields[5].rstrip("\n")
                if name.endswith(" (deleted)"):
                    name = name[:-len(" (deleted)")]
                if name != target and (os.path.basename(name) != os.path.basename(target)
                                       or os.path.realpath(name) != target):
                    continue
                low, high = (int(x, 16) for x in fields[0].split("-"))
                spans.append((low, high, int(fields[2], 16)))
    except (OSError, ValueError):
        return None
    return spans


def _merged(spans):
    """The address ranges of ``spans``, sorted and merged; None stays None."""
    if spans is None:
        return None
    merged = []
    for low, high, _ in sorted(spans):
        if merged and low <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def _file_mappings(path):
    """Address ranges where ``path`` is mapped in this process, merged; None if unknown."""
    return _merged(_file_spans(path))


def _record_span(tensor, spans):
    """(file offset, size) of a tensor that is its whole storage -- contiguous, from the
    storage's first byte to its last -- inside one of the file mappings ``spans``; else None.
    torch.save writes each storage as one zip record, so these are that record's bytes."""
    if not spans or not tensor.is_contiguous() or tensor.storage_offset() != 0:
        return None
    storage = tensor.untyped_storage()
    size = storage.nbytes()
    if size == 0 or tensor.numel() * tensor.element_size() != size:
        return None
    address = storage.data_ptr()
    for low, high, offset in spans:
        if low <= address and address + size <= high:
            return (address - low + offset, size)
    return None


def _in_mapping(tensor, ranges):
    """True when the tensor's storage lies inside one of ``ranges`` (None: cannot tell)."""
    if ranges is None:
        return True
    storage = tensor.untyped_storage()
    low = storage.data_ptr()
    high = low + storage.nbytes()
    return any(a <= low and high <= b for a, b in ranges)


def _torch_items(path, state, mapped, skipped):
    """_Items of the tensors in a loaded state dict; non-tensors go to ``skipped``.

    A tensor counts as mapped only if its storage really lies in the file's mapping
    (checked against /proc/self/maps where there is one): the exporter releases pages of
    mapped tensors, which on anonymous memory would zero the data.
    """
    items = []
    spans = _file_spans(path) if mapped else None
    ranges = _merged(spans)
    for k, v in state.items():
        if not _is_tensor(v):
            skipped.append(str(k))
            continue
        if not isinstance(k, str):
            raise _fail(path, f"tensor key {k!r} is a {type(k).__name__}, not a string",
                        LayoutError)
        if v.requires_grad:   # nn.Parameter and friends: a plain view, numpy() refuses grads
            v = v.detach()
        if type(v) is not _tensor_type() and v.layout == _strided() and not v.is_quantized:
            v = v.as_subclass(_tensor_type())   # a subclass's hooks have no say in the export
        is_mapped = mapped and v.device.type == "cpu" and not v.is_sparse \
            and v.layout == _strided() and _in_mapping(v, ranges)
        items.append(_Item(k, path, is_mapped, (lambda v=v: v), None, str(v.dtype),
                           tuple(v.shape), _record_span(v, spans) if is_mapped else None))
    return items


def _strided():
    import torch
    return torch.strided


def _tensor_type():
    import torch
    return torch.Tensor


def _build_entries(path, items, skipped, strict, keep_prefix, strip_prefixes, include, exclude):
    if strict and skipped:
        raise _fail(path, f"--strict: {len(skipped)} non-tensor entries: {_preview(skipped)}",
                    LayoutError)
    by_name = {}
    for item in items:
        name = final_name(item.source_name, keep_prefix, strip_prefixes)
        if not _selected(name, include, exclude):
            continue
        other = by_name.get(name)
        if other is not None:
            where = "" if other.file == item.file else f" (in {other.file} and {item.file})"
            raise _fail(path, f"name collision: {other.source_name!r} and {item.source_name!r} both "
                              f"become {name!r}{where} (use --keep-prefix or other --strip-prefix "
                              "rules)", NameCollisionError)
        by_name[name] = item
    entries = []
    for name in sorted(by_name):
        item = by_name[name]
        dtype = item.dtype
        if dtype is None:
            try:
                dtype = formatter_dtype(item.get(), item.source_name)
            except CheckpointError as exc:
                text = str(exc)
                if text.startswith(f"{item.file}: "):
                    raise
                raise _fail(item.file, text, type(exc)) from None
        entries.append(TensorEntry(name=name, source_name=item.source_name, dtype=dtype,
                                   torch_dtype=item.torch_dtype, shape=item.shape,
                                   file=item.file, mapped=item.mapped, _get=item.get,
                                   record_span=item.record_span))
    return entries


# ---- safetensors ----------------------------------------------------------------

def _safetensors_items(path, key, resources):
    from . import _safetensors

    if key is not None:
        raise _fail(path, f"--key {key}: a safetensors file is flat (no nested dicts to select)",
                    LayoutError)
    st = _safetensors.SafetensorsFile(path)
    resources.append(st)
    items = []
    for name, info in st.infos.items():
        dtype = info.torch_dtype_name if info.st_dtype in _safetensors.SUPPORTED else None
        mapped = (st.data_start + info.begin) % info.itemsize == 0
        get = (lambda st=st, name=name: st.tensor(name))
        items.append(_Item(name, path, mapped, get, dtype, "torch." + info.torch_dtype_name,
                           info.shape))
    return items


# ---- directories and index files ----------------------------------------------------

_TORCH_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")


def _only(path, names, what):
    if len(names) > 1:
        raise _fail(path, f"several {what} here: {_preview(names)}; pass one of them", LayoutError)
    return names[0] if names else None


def _resolve_directory(path):
    """The checkpoint file or index file a directory stands for (safetensors first)."""
    try:
        names = sorted(os.listdir(path))
    except OSError as exc:
        raise _fail(path, f"cannot list directory: {exc.strerror or exc}") from None
    files = [n for n in names if os.path.isfile(os.path.join(path, n))]
    chosen = None
    if "model.safetensors.index.json" in files:
        chosen = "model.safetensors.index.json"
    chosen = chosen or _only(path, [n for n in files if n.endswith(".safetensors.index.json")],
                             "safetensors index files")
    if chosen is None and "model.safetensors" in files:
        chosen = "model.safetensors"
    chosen = chosen or _only(path, [n for n in files if n.endswith(".safetensors")],
                             "safetensors files and no index")
    if chosen is None and "pytorch_model.bin.index.json" in files:
        chosen = "pytorch_model.bin.index.json"
    chosen = chosen or _only(path, [n for n in files if n.endswith(".index.json")], "index files")
    if chosen is None and "pytorch_model.bin" in files:
        chosen = "pytorch_model.bin"
    chosen = chosen or _only(path, [n for n in files if n.endswith(_TORCH_SUFFIXES)],
                             "checkpoint files and no index")
    if chosen is None:
        nested = [n for n in names if os.path.isdir(os.path.join(path, n)) and _holds_checkpoint(
            os.path.join(path, n))]
        hint = f"; these subdirectories hold one: {_preview(nested)}" if nested else ""
        raise _fail(path, "a directory with no checkpoint in it (no *.safetensors, *.index.json, "
                          f"pytorch_model.bin or *.pt){hint}")
    return os.path.join(path, chosen)


def _holds_checkpoint(folder):
    try:
        return any(n.endswith((".safetensors", ".index.json") + _TORCH_SUFFIXES)
                   for n in os.listdir(folder))
    except OSError:
        return False


def _read_index(index_path):
    """{tensor name: shard path} from a Hugging Face ``*.index.json``."""
    import json

    try:
        with open(index_path, "rb") as f:
            raw = f.read(MAX_INDEX + 1)
    except OSError as exc:
        raise _fail(index_path, f"cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_INDEX:
        raise _fail(index_path, "index file is implausibly large")
    try:
        index = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        cause = _one_line(exc, 150)
        raise _fail(index_path, f"corrupt index file (not valid JSON: {cause})") from None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict):
        raise _fail(index_path, "corrupt index file: no \"weight_map\" object", LayoutError)
    folder = os.path.dirname(index_path)
    shards = {}
    for name, shard in weight_map.items():
        if not isinstance(shard, str) or not shard or os.path.isabs(shard) \
                or ".." in shard.replace("\\", "/").split("/"):
            raise _fail(index_path, f"weight_map entry {name!r} names shard {shard!r}, not a file "
                                    "beside the index", LayoutError)
        shards[name] = os.path.join(folder, shard)
    return shards


MAX_INDEX = 256 * 1024 * 1024


def _file_items(path, key, unsafe_load, safe_globals, messages, skipped, resources,
                crc_threads):
    """_Items of one checkpoint file (torch zip, legacy pickle or safetensors)."""
    if _check_file(path) == "dir":
        raise _fail(path, "is a directory, not a checkpoint file")
    kind = _sniff(path)
    if kind == "safetensors":
        return _safetensors_items(path, key, resources)
    obj, mapped = _torch_load(path, kind, unsafe_load, safe_globals, messages, resources,
                              crc_threads)
    resources.append(_Holder(obj))
    state = select_state_dict(path, obj, key, messages)
    return _torch_items(path, state, mapped, skipped)


class _Holder:
    """Keeps a loaded object alive until the checkpoint closes."""

    def __init__(self, obj):
        self.obj = obj

    def close(self):
        self.obj = None


def _index_items(index_path, key, unsafe_load, safe_globals, messages, skipped, resources,
                 crc_threads):
    """_Items of every shard of an index, checked against its weight_map."""
    shards = _read_index(index_path)
    by_shard = {}
    for name, shard in shards.items():
        by_shard.setdefault(shard, []).append(name)
    items = []
    for shard in sorted(by_shard):
        listed = by_shard[shard]
        if not os.path.isfile(shard):
            raise _fail(index_path, f"shard {os.path.basename(shard)} (holding {listed[0]!r}"
                                    f"{' and others' if len(listed) > 1 else ''}) is missing")
        shard_items = _file_items(shard, key, unsafe_load, safe_globals, messages, skipped,
                                  resources, crc_threads)
        held = {item.source_name: item for item in shard_items}
        missing = [name for name in listed if name not in held]
        if missing:
            count = f" ({len(missing)} missing in all)" if len(missing) > 1 else ""
            raise _fail(index_path, f"tensor {missing[0]!r} is listed for shard "
                                    f"{os.path.basename(shard)} but missing from it{count}")
        extra = sorted(set(held) - set(listed))
        if extra:
            messages.append(f"{shard}: {len(extra)} tensors not in the index are ignored: "
                            f"{_preview(extra, 3)}")
        wanted = set(listed)
        items.extend(item for item in shard_items if item.source_name in wanted)
    return items


# ---- warnings about what the values mean --------------------------------------------

def _fp8_warning(path, entries, all_names):
    def has_scale(name):
        return name + "_scale_inv" in all_names or name + "_scale" in all_names

    scaled = [e.name for e in entries if e.dtype.startswith("float8") and has_scale(e.source_name)]
    if scaled:
        return (f"{path}: {len(scaled)} float8 tensors have *_scale_inv/*_scale companions "
                f"(e.g. {scaled[0]!r}): values are exported as stored, not dequantized")
    return None


# ---- the entry point ----------------------------------------------------------------

def open_checkpoint(path, *, key=None, keep_prefix=False, strip_prefixes=(), include=(),
                    exclude=(), strict=False, unsafe_load=False, safe_globals=(),
                    crc_threads=0):
    """Open a checkpoint and check everything that can be checked before formatting.

    ``path`` is a torch checkpoint (zip or legacy pickle), a safetensors file, a Hugging
    Face ``*.index.json`` or a directory holding one of these (safetensors preferred).
    Returns a ``Checkpoint`` (a context manager) whose ``entries`` are sorted by final name.

    ``crc_threads=N`` (N > 0): the CRC-32 pass over a zip's tensor data (nearly all of the
    file) runs on N threads beside torch.load and the caller's work instead of before this
    returns; the caller must call ``Checkpoint.check_data()`` before it publishes anything
    made from the tensors. The default, 0, checks everything before returning.
    """
    path = os.fspath(path)
    strip_prefixes = tuple(strip_prefixes or ())
    include = tuple(include or ())
    exclude = tuple(exclude or ())
    safe_globals = tuple(safe_globals or ())
    messages = []
    skipped = []
    resources = []
    try:
        source = path
        if _check_file(path) == "dir":
            source = _resolve_directory(path)
        if source.endswith(".index.json"):
            items = _index_items(source, key, unsafe_load, safe_globals, messages, skipped,
                                 resources, crc_threads)
        else:
            items = _file_items(source, key, unsafe_load, safe_globals, messages, skipped,
                                resources, crc_threads)
        entries = _build_entries(path, items, skipped, strict, keep_prefix, strip_prefixes,
                                 include, exclude)
        warning = _fp8_warning(path, entries, {item.source_name for item in items})
        if warning:
            messages.append(warning)
    except BaseException:
        for resource in resources:
            resource.close()
        raise
    return Checkpoint(path, entries, skipped, list(dict.fromkeys(messages)), resources)
