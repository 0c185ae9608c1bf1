"""``streamexport script``: a standalone export script for machines where only torch is installed.

    text = render(function_name="export_state_dict_json", keep_prefix=False, no_meta=False,
                  weights_only="True")

gives the source of a self-contained Python script (standard library + torch, nothing else)
whose export function has that name. ``python export_state_dict_json.py model.pt model.json``
writes, for a zip checkpoint, the same bytes as ``streamexport export`` in exact mode with the
same options. It streams -- one tensor at a time, in blocks of at most 65536 values -- so its
memory is bounded by the largest tensor's Python list, not by the checkpoint; it is the slow
path, ``streamexport export`` the fast one. The text lives in ``_script_template.py``.

Nothing the caller passes becomes code: ``function_name`` must be a plain identifier that the
script does not already use, and ``weights_only`` one of the two literals below. Bad values
raise ScriptOptionError (a StreamExportError and a ValueError).

``weights_only`` (``--weights-only EXPR``) accepts exactly:

* ``True`` (the default; also ``true``, ``1``, ``yes`` or the bool) -- torch's restricted
  unpickler: tensors and plain containers load, a pickle that would run code is refused;
* ``False`` (also ``false``, ``0``, ``no`` or the bool) -- full pickle: any code the checkpoint
  holds runs. The script then says so on stderr every time it loads a file.

The script writes the chosen value as the literal ``True`` or ``False``; no other expression
is accepted.
"""
import ast
import builtins
import keyword
import string
import unicodedata

from ._script_template import TEMPLATE
from .errors import StreamExportError

DEFAULT_FUNCTION_NAME = "export_state_dict_json"

_TRUE_WORDS = ("true", "1", "yes")
_FALSE_WORDS = ("false", "0", "no")
_PLACEHOLDER_NAME = "export_function_placeholder_"

_reserved_names = None


class ScriptOptionError(StreamExportError, ValueError):
    """An option of ``render`` that cannot go into the script (a usage error)."""


def parse_weights_only(expr):
    """``True``/``False`` from a bool or one of the words documented in the module."""
    if isinstance(expr, bool):
        return expr
    if isinstance(expr, str):
        word = expr.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    raise ScriptOptionError(
        f"--weights-only must be True or False, not {expr!r} (the script writes it as a "
        "literal; no other expression is accepted)")


def validate_function_name(name):
    """``name`` if it can be the script's export function; ScriptOptionError otherwise."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ScriptOptionError(f"--function-name must be a Python identifier, not {name!r}")
    if keyword.iskeyword(name):
        raise ScriptOptionError(f"--function-name {name!r} is a Python keyword")
    if unicodedata.normalize("NFKC", name) != name:
        raise ScriptOptionError(
            f"--function-name {name!r} is not in NFKC form; Python would read it as "
            f"{unicodedata.normalize('NFKC', name)!r}: use that spelling")
    if name.startswith("__") and name.endswith("__"):
        raise ScriptOptionError(f"--function-name {name!r}: dunder names are reserved by Python")
    if name in _names_the_script_uses():
        raise ScriptOptionError(
            f"--function-name {name!r} is a name the script already uses; choose another")
    return name


def render(function_name=DEFAULT_FUNCTION_NAME, keep_prefix=False, no_meta=False,
           weights_only="True"):
    """The source text of the standalone export script (see the module docstring)."""
    function_name = validate_function_name(function_name)
    weights_only = parse_weights_only(weights_only)
    keep_prefix = _flag("keep_prefix", keep_prefix)
    no_meta = _flag("no_meta", no_meta)
    options = [f"--function-name {function_name}"]
    if keep_prefix:
        options.append("--keep-prefix")
    if no_meta:
        options.append("--no-meta")
    options.append(f"--weights-only {weights_only}")
    text = _fill(function_name, keep_prefix, no_meta, weights_only, " ".join(options))
    compile(text, f"{function_name}.py", "exec")  # a broken script is our bug: fail here
    return text


def _flag(name, value):
    if not isinstance(value, bool):
        raise ScriptOptionError(f"{name} must be True or False, not {value!r}")
    return value


_LOAD_NOTES = {
    True: "torch.load(weights_only=True): a pickle that would run code is refused.",
    False: "WEIGHTS_ONLY is False: torch.load runs any code the checkpoint's pickle holds. "
           "Use it only\non files you trust; every run says so on stderr.",
}


def _fill(function_name, keep_prefix, no_meta, weights_only, options):
    return string.Template(TEMPLATE).substitute(
        function_name=function_name, keep_prefix=repr(keep_prefix), no_meta=repr(no_meta),
        weights_only=repr(weights_only), options=options, load_note=_LOAD_NOTES[weights_only])


def _names_the_script_uses():
    """Every name the script binds or reads anywhere, and the builtins: the export function
    must shadow none of them (a parameter or a local of that name would hide it too)."""
    global _reserved_names
    if _reserved_names is None:
        tree = ast.parse(_fill(_PLACEHOLDER_NAME, False, False, True, ""))
        names = set(dir(builtins))
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                names.add(node.id)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.alias):
                names.add((node.asname or node.name).split(".")[0])
            elif isinstance(node, ast.ExceptHandler) and node.name:
                names.add(node.name)
        names.discard(_PLACEHOLDER_NAME)
        _reserved_names = frozenset(names)
    return _reserved_names
