"""The text of the standalone export script that ``streamexport script`` writes.

``TEMPLATE`` is a ``string.Template``: ``streamexport.script.render`` fills its placeholders
(``$function_name``, ``$keep_prefix``, ``$no_meta``, ``$weights_only``, ``$options``,
``$load_note``) with values it has validated or chosen -- an identifier, the literals
``True``/``False``, fixed sentences -- so nothing a user types ever becomes code. A literal
dollar sign in the script would be written ``$$``; there is none.

The script needs only the standard library and torch: no numpy, no orjson, no streamexport.
Its output is byte for byte the one of ``streamexport export`` in exact mode (see DESIGN.md).
"""

TEMPLATE = r'''#!/usr/bin/env python3
# -*- coding: utf-8 -*-
"""Export a PyTorch checkpoint's state_dict to TorchLean's JSON.

Written by `streamexport script` ($options).
Needs only the Python standard library and torch (2.1 or later to memory-map the checkpoint).
$load_note

Usage:
    python $function_name.py CHECKPOINT OUTPUT      (OUTPUT "-" writes to standard output)
or, from Python:
    from $function_name import $function_name
    $function_name("model.pt", "model.json")

Output: exactly the bytes of
    json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
encoded as UTF-8 with no trailing newline, where payload is
    {"meta": {name: {"dtype": str(t.dtype), "shape": list(t.shape)}, ...},
     "params": {name: t.tolist(), ...}}
(only {"params": ...} when NO_META is True). The state_dict is the checkpoint itself, or its
"state_dict" or "model_state_dict" entry when that entry is a dict (checked in that order).
Entries that are not tensors are skipped and counted on stderr. A leading "module." is
stripped from names unless KEEP_PREFIX is True; two names that become equal are an error.
NaN and infinities are an error (JSON has no token for them). The output is written to a
temporary file beside OUTPUT and renamed on success: a failed or interrupted run leaves no new
file and an existing OUTPUT untouched. Errors print one line on stderr and exit with status 1
(2: wrong arguments, 130: interrupted, 143: terminated).

Memory: the checkpoint is memory-mapped (torch.load(mmap=True)) and the document is STREAMED,
one tensor at a time and, within a tensor, blocks of at most BLOCK_VALUES values: each block
goes through tolist() and json.dumps(), is written, and is dropped. So memory is bounded by
the Python list of the largest tensor (in fact of the largest block), never by the checkpoint.
(Pages of the mapping already read show in the resident size as clean file cache, which the
kernel drops when it needs the memory.) A legacy (non-zip) checkpoint cannot be mapped and is
loaded whole, with a warning.

Speed: this is the portable, slow path: json.dumps formats every float with repr, about half
a million to a million values per second on one core. The fast path, with the same output
and a bounded memory, is `pip install streamexport` and then
    streamexport export CHECKPOINT OUTPUT
"""
import inspect
import json
import os
import signal
import stat
import sys
import tempfile
import warnings
import zipfile

import torch

KEEP_PREFIX = $keep_prefix
NO_META = $no_meta
WEIGHTS_ONLY = $weights_only

PREFIX = "module."
LAYOUT_KEYS = ("state_dict", "model_state_dict")
BLOCK_VALUES = 1 << 16
SHOW_NAMES = 5
_COMPACT = (",", ":")


class ExportError(Exception):
    """An error this script reports on purpose: one line on stderr, exit status 1."""


class _Terminated(BaseException):
    """SIGTERM arrived: unwind like KeyboardInterrupt, so the temporary file is removed."""


def $function_name(
        checkpoint, output, keep_prefix=KEEP_PREFIX, no_meta=NO_META, weights_only=WEIGHTS_ONLY):
    """Export the state_dict in the file ``checkpoint`` to TorchLean JSON at ``output``
    ("-": standard output). Returns {"tensors": count, "skipped": [names of non-tensors]};
    raises ExportError for a checkpoint or a name it refuses. A file output is atomic; on
    standard output a failure can leave the document cut short."""
    loaded, notes = _load(checkpoint, weights_only)
    for note in notes:
        print("warning: " + note, file=sys.stderr)
    state_dict = _state_dict(loaded, checkpoint)
    tensors, skipped = _select(state_dict, keep_prefix, checkpoint)

    def write_document(write):
        _write_document(write, tensors, no_meta, checkpoint)

    if output == "-":
        stdout = sys.stdout.buffer
        write_document(stdout.write)
        stdout.flush()
    else:
        _atomic_write(output, write_document)
    return {"tensors": len(tensors), "skipped": skipped}


# ---- reading ---------------------------------------------------------------------------

def _load(path, weights_only):
    """torch.load, memory-mapped when the file is a zip checkpoint; returns (object, notes)."""
    if not os.path.exists(path):
        raise ExportError("%s: no such file" % path)
    if os.path.isdir(path):
        raise ExportError("%s: is a directory, not a checkpoint file" % path)
    if os.path.getsize(path) == 0:
        raise ExportError("%s: the file is empty" % path)
    notes = []
    options = {"map_location": "cpu", "weights_only": weights_only}
    if zipfile.is_zipfile(path) and "mmap" in inspect.signature(torch.load).parameters:
        options["mmap"] = True
    if not weights_only:
        print("warning: weights_only=False: loading %s runs any code its pickle holds; "
              "use it only on files you trust" % path, file=sys.stderr)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = torch.load(path, **options)
    except Exception as exc:
        raise ExportError("cannot load %s: %s" % (path, _describe_load_error(exc))) from None
    if "mmap" not in options:
        notes.append("%s cannot be memory-mapped (not a zip checkpoint, or torch older than "
                     "2.1): it was loaded whole into memory" % path)
    return loaded, notes


def _describe_load_error(exc):
    paragraphs = [" ".join(part.split()) for part in str(exc).split("\n\n") if part.strip()]
    if not paragraphs:
        return type(exc).__name__
    if paragraphs[0].startswith("Weights only load failed") and len(paragraphs) > 1:
        details = [p for p in paragraphs[1:] if not p.startswith("Check the documentation")]
        return "weights_only=True refused it: " + " ".join(details or paragraphs[1:])
    return "%s: %s" % (type(exc).__name__, paragraphs[0])


def _state_dict(loaded, path):
    if not isinstance(loaded, dict):
        raise ExportError("%s: the checkpoint holds a %s, not a dict of tensors"
                          % (path, type(loaded).__name__))
    for key in LAYOUT_KEYS:
        if key in loaded and isinstance(loaded[key], dict):
            return loaded[key]
    return loaded


def _quote(name):
    """A name as it appears in messages: JSON-quoted (so on one line), or repr if not a str."""
    if isinstance(name, str):
        return json.dumps(name, ensure_ascii=False)
    return repr(name)


def _select(state_dict, keep_prefix, path):
    """{output name: tensor} of the tensors, and the keys skipped because not tensors."""
    tensors = {}
    original = {}
    skipped = []
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            skipped.append(key)
            continue
        if not isinstance(key, str):
            raise ExportError("%s: tensor key %r is not a string" % (path, key))
        name = key[len(PREFIX):] if not keep_prefix and key.startswith(PREFIX) else key
        if name in tensors:
            raise ExportError(
                "%s: names %s and %s are both %s after stripping the leading %r; keep the "
                "prefix (keep_prefix=True) or rename one" % (
                    path, _quote(original[name]), _quote(key), _quote(name), PREFIX))
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise ExportError("%s: name %r is not valid Unicode text" % (path, name)) from None
        _check_tensor(name, value, path)
        tensors[name] = value
        original[name] = key
    return tensors, skipped


def _check_tensor(name, tensor, path):
    """Refuse, before any output exists, a tensor that has no JSON form."""
    kind = None
    if tensor.layout != torch.strided:
        kind = "a sparse tensor (%s)" % tensor.layout
    elif tensor.is_quantized:
        kind = "a quantized tensor (%s)" % tensor.dtype
    elif tensor.is_meta:
        kind = "a meta tensor (no data)"
    elif tensor.is_complex():
        kind = "a complex tensor (%s)" % tensor.dtype
    if kind is not None:
        raise ExportError("%s: tensor %s is %s, which has no JSON form" % (path, _quote(name), kind))


# ---- writing ---------------------------------------------------------------------------

def _write_document(write, tensors, no_meta, path):
    names = sorted(tensors)
    keys = [json.dumps(name, ensure_ascii=False).encode("utf-8") for name in names]
    if no_meta:
        write(b'{"params":{')
    else:
        write(b'{"meta":{')
        for position, (name, key) in enumerate(zip(names, keys)):
            tensor = tensors[name]
            meta = {"dtype": str(tensor.dtype), "shape": list(tensor.shape)}
            text = json.dumps(meta, sort_keys=True, separators=_COMPACT, ensure_ascii=False)
            write((b"," if position else b"") + key + b":" + text.encode("utf-8"))
        write(b'},"params":{')
    for position, (name, key) in enumerate(zip(names, keys)):
        write((b"," if position else b"") + key + b":")
        tensor = tensors[name]
        _write_values(write, tensor, _Context(name, tensor, path))
    write(b"}}")


class _Context:
    """The tensor being written, for error messages about any block of it."""

    def __init__(self, name, tensor, path):
        self.name = name
        self.tensor = tensor
        self.path = path


def _write_values(write, part, context):
    """Write json.dumps(part.tolist()) in blocks of at most BLOCK_VALUES values.

    A part of at most BLOCK_VALUES values is one block. A larger one (so it has a first
    dimension and no empty dimension) is written as "[" + blocks of whole rows, each the
    text of its list without the outer brackets, joined by "," + "]"; a row that alone is
    too large is written the same way, one level down. The bytes are those of the one-shot
    json.dumps, because a compact JSON array is its items' texts joined by ",".
    """
    total = part.numel()
    if total <= BLOCK_VALUES:
        write(_block_text(part, context))
        return
    rows = part.shape[0]
    row_values = total // rows
    write(b"[")
    if row_values <= BLOCK_VALUES:
        step = BLOCK_VALUES // row_values
        for start in range(0, rows, step):
            if start:
                write(b",")
            write(_block_text(part[start:start + step], context)[1:-1])
    else:
        for row in range(rows):
            if row:
                write(b",")
            _write_values(write, part[row], context)
    write(b"]")


def _block_text(block, context):
    try:
        values = block.tolist()
    except (RuntimeError, TypeError) as exc:
        raise ExportError("%s: tensor %s (%s) cannot be converted: %s" % (
            context.path, _quote(context.name), context.tensor.dtype, exc)) from None
    try:
        text = json.dumps(values, separators=_COMPACT, allow_nan=False)
    except ValueError:
        raise _nonfinite_error(context) from None
    return text.encode("ascii")


def _nonfinite_error(context):
    tensor = context.tensor
    try:
        bad = ~torch.isfinite(tensor)
    except (RuntimeError, TypeError):
        bad = ~torch.isfinite(tensor.to(torch.float64))
    flat = bad.reshape(-1)
    count = int(flat.sum())
    first = int(flat.to(torch.uint8).argmax())
    value = tensor.reshape(-1)[first].item()
    index = []
    rest = first
    for size in reversed(tuple(tensor.shape)):
        index.append(rest % size)
        rest //= size
    index.reverse()
    return ExportError(
        "%s: tensor %s has %d non-finite value%s (NaN or infinity, which JSON cannot hold); "
        "the first is %r at index %s (row-major flat index %d)" % (
            context.path, _quote(context.name), count, "" if count == 1 else "s", value,
            index, first))


def _atomic_write(output, write_document):
    """Write to a temporary file created exclusively beside ``output``; os.replace it onto
    ``output`` on success; remove it on any failure, KeyboardInterrupt included."""
    directory = os.path.dirname(os.path.abspath(output))
    try:
        mode = stat.S_IMODE(os.stat(output).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    if os.path.isdir(output):
        raise ExportError("%s: is a directory" % output)
    if not os.path.isdir(directory):
        raise ExportError("%s: the directory %s does not exist" % (output, directory))
    prefix = "." + os.path.basename(output) + "."
    fd, temp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as out:
            write_document(out.write)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, mode)
        os.replace(temp, output)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


# ---- command line ----------------------------------------------------------------------

def _on_sigterm(signum, frame):
    raise _Terminated()


def main(argv=None):
    """Run as a command: main(["model.pt", "model.json"]) -> exit status."""
    args = sys.argv[1:] if argv is None else list(argv)
    prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "$function_name.py"
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if len(args) != 2:
        print("usage: python %s CHECKPOINT OUTPUT   (OUTPUT - writes to stdout)" % prog,
              file=sys.stderr)
        return 2
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        report = $function_name(args[0], args[1])
    except ExportError as exc:
        return _fail(prog, str(exc), 1)
    except KeyboardInterrupt:
        return _fail(prog, "interrupted; nothing was written", 130)
    except _Terminated:
        return _fail(prog, "terminated; nothing was written", 143)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except OSError as exc:
        where = exc.filename if exc.filename is not None else args[1]
        return _fail(prog, "%s: %s" % (where, exc.strerror or exc), 1)
    except Exception as exc:
        return _fail(prog, "unexpected %s: %s" % (type(exc).__name__, exc), 1)
    finally:
        signal.signal(signal.SIGTERM, previous)
    skipped = report["skipped"]
    if skipped:
        shown = ", ".join(_quote(name) for name in skipped[:SHOW_NAMES])
        more = ", ..." if len(skipped) > SHOW_NAMES else ""
        print("%s: skipped %d non-tensor entr%s: %s%s" % (
            prog, len(skipped), "y" if len(skipped) == 1 else "ies", shown, more), file=sys.stderr)
    return 0


def _fail(prog, message, status):
    print("%s: error: %s" % (prog, " ".join(message.splitlines())), file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
'''
