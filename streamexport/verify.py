"""``streamexport verify``: re-read an export incrementally and prove it matches its checkpoint.

    report = streamexport.verify("model.json", against="model.pt")
    report.ok, report.failures, report.summary()

How it reads (issue 4):

* ijson's ``yajl2_c`` backend with ``use_float=True``, as an event stream (its push parser,
  ``basic_parse_coro``, fed a read at a time), never ``items()`` of a tensor. A slower
  backend is refused unless ``allow_slow_backend``.
* A tensor's shape fixes its whole event sequence (``[`` ... numbers ... ``]``), so events are
  taken in groups of about ``GROUP_EVENTS`` and checked against a precomputed template. With
  the C extension ``_verify_events``, one call checks a group's names against the template
  and copies its element values into a numpy array, where the push parser left the events.
  It only says yes or no; a group it declines (or every group, without the extension) goes
  to the Python path: the bracket events (picked by one ``itemgetter``) must equal the
  template's, the element events must all carry the element's name, and their values are
  converted with ``numpy.fromiter``. Either way a group's numbers become one numpy array
  compared with the checkpoint's elements of the same flat range, streamed with
  ``tensors.iter_chunks`` (mapped pages released behind). No Python code runs per element;
  memory is bounded by a group, not by a tensor or the file.
* Only when a group differs from its template does a slow walk find the first deviating
  event and its multi-dimensional index; the reader then skips to the end of that value so
  that ``all_failures`` can go on with the next tensor.
* The shape comes from meta, else from the checkpoint, else it is learned from the data: the
  first array at each depth fixes that dimension (read in template groups too), and every
  later array must match it. Only scalars and values starting with an empty array are walked
  event by event.

Float checks (the arithmetic is in ``_verify_floats``). *exact*: the parsed float64 must equal
the element widened to float64, bit for bit (-0.0 included). *shortest*: the parsed value
rounded to meta's dtype must give the element's bits. The decimal is parsed to float64 first
(correctly rounded) and then rounded to the dtype; that double rounding equals rounding the
decimal directly unless the float64 lands exactly on a midpoint between two neighbours of the
dtype (float64 holds every such midpoint, and rounding is monotonic, so any other float64 lies
on the same side of every midpoint as the decimal does). Those midpoint elements are set aside
and decided at the end by a second, exact pass that reads their tokens as ``Decimal``.

The mode is given, or detected: while every value is a widened element both modes agree; at
the first chunk where some are not, it is "shortest" when most of those values are exactly
what the shortest text of their rounding parses to, else "exact" (and they are failures).
"""
import gc
import os
import time
from operator import itemgetter

import numpy as np

from ._verify_numbers import (_FLOAT_FORMATS, _INT_RANGES, _KINDS, _Cursor, _decide_midpoint,
                              _is_shortest_text, round_to_format, widen)
from .errors import StreamExportError, VerifyError
from .progress import check_kind, progress_for

try:    # the C loop over a group's events; without it the Python path checks every group
    from ._verify_events import take_values as _take_values
except ImportError:
    _take_values = None

GROUP_EVENTS = 1 << 12          # events pulled and checked at once (about 400 kB of tuples)

_NAME = itemgetter(0)
_VALUE = itemgetter(1)
_S, _E, _N, _B = "start_array", "end_array", "number", "boolean"
_U64 = np.uint64

_TORCH_NAMES = {f"torch.{name}": name for name in _KINDS}
# per element kind: take_values's letter and the array its values go to (uint64's values,
# beyond int64, go to their own: _value_array)
_VALUE_ARRAYS = {"float": ("f", np.float64), "int": ("i", np.int64), "bool": ("b", np.bool_)}


def _value_array(dtype):
    return ("u", np.uint64) if dtype == "uint64" else _VALUE_ARRAYS[_KINDS[dtype]]
_FLOAT_MODES = ("exact", "shortest")


# ---- the report -------------------------------------------------------------------------

class VerifyReport:
    """What ``verify`` found. ``ok`` is True when there are no failures."""

    def __init__(self, path, against=None):
        self.path = os.fspath(path)
        self.against = os.fspath(against) if against is not None else None
        self.tensors = 0
        self.elements = 0
        self.bytes = 0
        self.seconds = 0.0
        self.failures = []
        self.float_format = None        # "exact" / "shortest" / None (nothing told them apart)
        self.float_format_detected = False
        self.floats = False             # whether any float tensor was read
        self.backend = None

    @property
    def ok(self):
        return not self.failures

    def summary(self):
        """One line: what was checked and how long it took."""
        rate = self.bytes / self.seconds / 1e6 if self.seconds > 0 else 0.0
        what = f"against {self.against}" if self.against else "structure only"
        if self.float_format:
            floats = f"{self.float_format} floats{' (detected)' if self.float_format_detected else ''}"
        elif self.floats:
            floats = "float format not distinguishable"
        else:
            floats = "no floats"
        head = "verified" if self.ok else f"FAILED ({len(self.failures)} failure" \
            f"{'' if len(self.failures) == 1 else 's'})"
        return (f"{head} {self.path}: {self.tensors} tensors, {self.elements:,} elements, "
                f"{self.bytes:,} bytes in {self.seconds:.2f} s ({rate:.1f} MB/s); {what}; {floats}")

    def lines(self):
        """What the CLI prints: the failures, one a line, or the summary when there are none."""
        return list(self.failures) if self.failures else [self.summary()]

    def raise_for_failures(self):
        if self.failures:
            raise VerifyError(self.failures[0] if len(self.failures) == 1 else
                              f"{self.failures[0]} (and {len(self.failures) - 1} more)")

    def __repr__(self):
        return f"<VerifyReport {self.summary()}>"


# ---- helpers ------------------------------------------------------------------------------

class _Stop(Exception):
    """Stop verifying: the first failure (without all_failures) or an unreadable file."""


class _ParseError(Exception):
    def __init__(self, error, events):
        super().__init__(str(error))
        self.error = error
        self.events = events


def _quote(name):
    text = repr(name)
    return '"' + text[1:-1].replace('"', '\\"') + '"' if text[0] == "'" else text


def _at(name, index):
    if not index:
        return _quote(name)
    return f"{_quote(name)}[{', '.join(str(int(i)) for i in index)}]"


def _json_error_text(error):
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    text = lines[0].rstrip(".")
    if len(lines) > 1 and "(right here)" not in lines[1]:
        text += f" near {lines[1]!r}"
    return text


def _event_text(event):
    name, value = event
    if name == _N:
        return f"the number {value!r}"
    if name == _B:
        return "true" if value else "false"
    return {"null": "null", "string": f"the string {value!r}", _S: "an array",
            _E: "the end of an array", "start_map": "an object",
            "map_key": f"the key {value!r}", "end_map": "the end of an object"}.get(name, name)


def _value_text(value):
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(int(value))


class _Sink:
    """The target of ijson's push parser, whose ``send`` receives each event."""
    __slots__ = ("send",)

    def __init__(self, send):
        self.send = send


_LIST_TARGETS = {}


def _takes_a_list(backend):
    """Whether ``backend``'s push parser accepts a list as its target's ``send``.

    yajl2_c's parser appends to such a list itself (PyList_Append) instead of calling a
    method per event, a few percent of the whole parse. That is how its C code is written
    rather than a documented promise, so it is tried once on a tiny document; any other
    backend, or a yajl2_c that calls ``send``, gets the list's ``append``."""
    found = _LIST_TARGETS.get(backend.__name__)
    if found is None:
        events = []
        try:
            parser = backend.basic_parse_coro(_Sink(events), use_float=True)
            parser.send(b"[1.5]")
            parser.close()
            found = events == [(_S, None), (_N, 1.5), (_E, None)]
        except Exception:       # a parser that calls send: TypeError, list is not callable
            found = False
        _LIST_TARGETS[backend.__name__] = found
    return found


class _EventSource:
    """The document's events, taken in groups of a given length.

    The file is fed to ijson's push parser (``basic_parse_coro``) a read at a time; its events
    collect in one list, and ``take`` slices groups off it, or ``take_values`` checks a group
    where it lies. That is faster than pulling events one by one from the ``basic_parse``
    generator. A parse error is held back until a ``take`` needs events beyond it: the events
    before it are all served first, and the ``_ParseError`` carries those of the group it cut
    short."""

    READ_SIZE = 1 << 16

    def __init__(self, backend, stream):
        self._buffer = []
        self._position = 0
        send = self._buffer if _takes_a_list(backend) else self._buffer.append
        self._parser = backend.basic_parse_coro(_Sink(send), use_float=True)
        self._stream = stream
        self._done = False
        self._error = None
        self.integer_overflow = False

    def _fill(self):
        if self._position:
            del self._buffer[:self._position]
            self._position = 0
        try:
            data = self._stream.read(self.READ_SIZE)
            if data:
                self._parser.send(data)
            else:
                self._done = True
                self._parser.close()
        except Exception as error:  # ijson's JSONError, or a slow backend's ValueError
            self._done = True
            self._error = error
            # yajl keeps integers in a C long long: a uint64 element >= 2**63 is valid JSON
            # that only a bignum-reading backend takes (see verify())
            self.integer_overflow = "integer overflow" in str(error)

    def _read_ahead(self, count):
        """Parse until ``count`` events are waiting, or the file (or its valid part) ends."""
        while len(self._buffer) - self._position < count and not self._done:
            self._fill()

    def take(self, count):
        self._read_ahead(count)
        buffer = self._buffer
        start = self._position
        end = min(start + count, len(buffer))
        self._position = end
        events = buffer[start:end]
        if end - start < count and self._error is not None:
            raise _ParseError(self._error, events)
        return events

    def take_values(self, letters, kind, out):
        """Consume the next ``len(letters)`` events if ``_take_values`` accepts them (their
        element values are then in ``out``); else leave them for ``take``."""
        self._read_ahead(len(letters))
        if _take_values(self._buffer, self._position, letters, kind, out):
            self._position += len(letters)
            return True
        return False

    def push_back(self, events):
        self._buffer[self._position:self._position] = events


class _Spec:
    """What one param must look like: name, dtype, shape and (with --against) its elements."""

    def __init__(self, name, dtype, shape, cursor=None):
        self.name = name
        self.dtype = dtype
        self.kind = _KINDS[dtype]
        self.shape = tuple(shape)
        self.cursor = cursor
        self.first_failure = None       # under all_failures: the first wrong element's line
        self.bad_elements = 0
        self.elem = _B if self.kind == "bool" else _N
        self.values_kind, self.values_dtype = _value_array(dtype)
        n = len(self.shape)
        self.events = [1] * (n + 1)       # events of one block at level k (dims k..n-1)
        self.elements = [1] * (n + 1)     # elements of one block at level k
        for k in range(n - 1, -1, -1):
            self.events[k] = 2 + self.shape[k] * self.events[k + 1]
            self.elements[k] = self.shape[k] * self.elements[k + 1]

    def flat(self, index):
        return sum(i * self.elements[k + 1] for k, i in enumerate(index))

    def unravel(self, flat):
        index = []
        for k in range(len(self.shape)):
            index.append(flat // self.elements[k + 1])
            flat %= self.elements[k + 1]
        return index


_TEMPLATES = {}
_TEMPLATE_NAMES = {ord("["): _S, ord("]"): _E}


def _element_positions(dims):
    """Positions of the elements in the event sequence of one block of shape ``dims``."""
    positions = np.zeros(1, dtype=np.int64)
    length = 1
    for size in reversed(dims):
        offsets = np.arange(size, dtype=np.int64)[:, None] * length
        positions = 1 + (offsets + positions[None, :]).ravel()
        length = 2 + size * length
    return positions, length


class _Template:
    """The event sequence of ``repeat`` consecutive blocks of shape ``dims``.

    ``names`` lists every event name (for diagnosis). A group of events is checked without
    building its list of names: the bracket events picked by ``brackets`` must equal
    ``bracket_events``, the events picked by ``elements`` must all be named ``elem``, and
    the length must be ``length``; together that is the whole sequence."""

    __slots__ = ("names", "letters", "length", "count", "elements", "brackets", "bracket_events")

    def __init__(self, elem, dims, repeat):
        block = b"v"
        for size in reversed(dims):
            block = b"[" + block * size + b"]"
        self.letters = block * repeat         # the names, one letter each, for take_values
        self.names = [_TEMPLATE_NAMES.get(letter, elem) for letter in self.letters]
        self.length = len(self.names)
        if not dims:
            self.count = repeat
            self.elements = self.brackets = None
            self.bracket_events = ()
            return
        positions, length = _element_positions(dims)
        positions = (np.arange(repeat, dtype=np.int64)[:, None] * length
                     + positions[None, :]).ravel()
        self.count = len(positions)
        self.elements = _getter(positions.tolist())
        is_bracket = np.ones(self.length, dtype=bool)
        is_bracket[positions] = False
        others = np.flatnonzero(is_bracket).tolist()
        self.brackets = _getter(others)
        self.bracket_events = tuple((self.names[i], None) for i in others)


def _getter(positions):
    """A C-level picker: ``getter(sequence)`` is the tuple of the items at ``positions``."""
    if len(positions) > 1:
        return itemgetter(*positions)
    if len(positions) == 1:
        only = positions[0]
        return lambda values: (values[only],)
    return lambda values: ()


def _template(elem, dims, repeat):
    key = (elem, dims, repeat)
    found = _TEMPLATES.get(key)
    if found is None:
        if len(_TEMPLATES) > 256:
            _TEMPLATES.clear()
        found = _TEMPLATES[key] = _Template(elem, dims, repeat)
    return found


def _load_backend(allow_slow_backend):
    import ijson
    try:
        return ijson.get_backend("yajl2_c")
    except ImportError:
        pass
    fallback = getattr(ijson, "backend", "python")
    if not allow_slow_backend:
        raise StreamExportError(
            f"ijson's C backend (yajl2_c) is not available, ijson would fall back to the slower "
            f"{fallback!r} backend; reinstall ijson with its C extension (yajl) or pass "
            f"--allow-slow-backend")
    return ijson


# ---- the verifier -----------------------------------------------------------------------

class _Verifier:

    def __init__(self, path, report, backend, float_format, all_failures, chunk_elements,
                 partial=False):
        self.path = path
        # a part of the params (parallel verify): the keys missing from it are the parent's
        # to count, against the keys every part saw
        self.partial = partial
        self.seen_params = []
        self.meta_keys = self.checkpoint_keys = None
        self.report = report
        self.backend = backend
        self.mode = float_format
        self.all_failures = all_failures
        self.chunk_elements = chunk_elements
        self.checkpoint = None
        self.midpoints = []           # (name, dtype, flat indices, parsed values, wanted values)
        self.readable = True
        self.narrow_floats = False    # saw a float tensor narrower than float64
        self._events = None

    # -- failures and events

    def fail(self, message):
        self.report.failures.append(message)
        if not self.all_failures:
            raise _Stop()

    @property
    def integer_overflow(self):
        """Whether the parser stopped at an integer beyond its range (yajl: a C long long)."""
        return self._events is not None and self._events.integer_overflow

    def fatal(self, message):
        self.readable = False
        self.report.failures.append(message)
        raise _Stop()

    def take(self, count):
        return self._events.take(count)

    def next(self, where):
        try:
            events = self.take(1)
        except _ParseError as error:
            text = _json_error_text(error.error)
            if "premature EOF" in text:
                self.fatal(f"{where}: the file ends here (truncated?)")
            self.fatal(f"{where}: invalid JSON: {text}")
        if not events:
            self.fatal(f"{where}: the file ends here (truncated?)")
        return events[0]

    def push_back(self, events):
        self._events.push_back(events)

    def skip_value(self, first, depth=0):
        """Consume the rest of a value whose first (already read) event is ``first``."""
        event = first
        while True:
            name = event[0]
            if name in (_S, "start_map"):
                depth += 1
            elif name in (_E, "end_map"):
                depth -= 1
            if depth <= 0 and name != "map_key":
                return
            event = self.next("skipping a value")

    # -- the document

    def run(self, stream):
        self._events = _EventSource(self.backend, stream)
        first = self.next("the document")
        if first[0] != "start_map":
            self.fatal(f"the top level is {_event_text(first)}, not an object "
                       '{"meta": ..., "params": ...}')
        meta = None
        seen = set()
        while True:
            name, value = self.next("the top-level object")
            if name == "end_map":
                break
            if value in seen:
                self.fail(f"duplicate top-level key {_quote(value)}")
                self.skip_value(self.next(f"top-level key {_quote(value)}"))
                continue
            seen.add(value)
            if value == "meta":
                if "params" in seen:
                    self.fail('"meta" comes after "params" (keys must be sorted)')
                    self.skip_value(self.next('"meta"'))
                    continue
                meta = self.read_meta()
            elif value == "params":
                self.read_params(meta)
            else:
                self.fail(f"unexpected top-level key {_quote(value)} (only \"meta\" and \"params\")")
                self.skip_value(self.next(f"top-level key {_quote(value)}"))
        if "params" not in seen:
            self.fail('the document has no "params"')
        try:
            extra = self.take(1)
        except _ParseError as error:
            self.fatal(f"trailing data after the document: {_json_error_text(error.error)}")
        if extra:
            self.fatal("trailing data after the document")

    def read_small(self, first, where):
        """Build a small value (a meta entry) from events, reporting duplicate keys."""
        name, value = first
        if name == "start_map":
            result = {}
            while True:
                name, key = self.next(where)
                if name == "end_map":
                    return result
                item = self.read_small(self.next(where), f"{where}.{key}")
                if key in result:
                    self.fail(f"duplicate key {_quote(key)} in {where}")
                result[key] = item
        if name == _S:
            result = []
            while True:
                event = self.next(where)
                if event[0] == _E:
                    return result
                result.append(self.read_small(event, where))
        return value

    def read_meta(self):
        first = self.next('"meta"')
        if first[0] != "start_map":
            self.fail(f'"meta" is {_event_text(first)}, not an object')
            self.skip_value(first)
            return None
        meta = {}
        while True:
            name, key = self.next('"meta"')
            if name == "end_map":
                return meta
            entry = self.read_small(self.next(f"meta of {_quote(key)}"), f"meta of {_quote(key)}")
            if key in meta:
                self.fail(f"duplicate key {_quote(key)} in meta")
                continue
            meta[key] = self.check_meta_entry(key, entry)

    def check_meta_entry(self, key, entry):
        where = f"meta of {_quote(key)}"
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape"}:
            self.fail(f'{where} is not {{"dtype": ..., "shape": [...]}}: {entry!r:.80}')
            return False
        dtype = _TORCH_NAMES.get(entry["dtype"]) if isinstance(entry["dtype"], str) else None
        if dtype is None:
            self.fail(f"{where}: unknown dtype {entry['dtype']!r:.40}")
            return False
        shape = entry["shape"]
        if not isinstance(shape, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            self.fail(f"{where}: shape {shape!r:.60} is not a list of sizes")
            return False
        return (dtype, tuple(shape))

    def read_params(self, meta):
        first = self.next('"params"')
        if first[0] != "start_map":
            self.fail(f'"params" is {_event_text(first)}, not an object')
            self.skip_value(first)
            return
        entries = {}
        if self.checkpoint is not None:
            entries = {entry.name: entry for entry in self.checkpoint.entries}
            self.checkpoint_keys = set(entries)
        if meta is not None:
            self.meta_keys = set(meta)
        seen = set()
        while True:
            name, key = self.next('"params"')
            if name == "end_map":
                break
            if key in seen:
                self.fail(f"duplicate key {_quote(key)} in params")
                self.skip_value(self.next(f"param {_quote(key)}"))
                continue
            seen.add(key)
            self.seen_params.append(key)
            self.read_param(key, meta, entries.get(key))
        if self.partial:
            return
        if meta is not None:
            for key in sorted(set(meta) - seen):
                self.fail(f"{_quote(key)}: in meta but missing from params")
        if self.checkpoint is not None:
            for key in sorted(set(entries) - seen):
                self.fail(f"{_quote(key)}: in the checkpoint but missing from the output")

    def read_param(self, key, meta, entry):
        expected = None
        if meta is not None:
            expected = meta.get(key)
            if expected is None:
                self.fail(f"{_quote(key)}: in params but not in meta")
        if self.checkpoint is not None and entry is None:
            self.fail(f"{_quote(key)}: in the output but not in the checkpoint")
        compare = entry is not None
        if entry is not None and expected:
            dtype, shape = expected
            if dtype != entry.dtype or shape != tuple(entry.shape):
                self.fail(f"meta of {_quote(key)}: torch.{dtype} {list(shape)}, but the checkpoint "
                          f"has {entry.torch_dtype} {list(entry.shape)}")
                compare = False
        if expected:
            dtype, shape = expected
        elif entry is not None:
            dtype, shape = entry.dtype, tuple(entry.shape)
        else:
            self.discover(key)
            return
        cursor = _Cursor(entry, self.chunk_elements) if compare else None
        spec = _Spec(key, dtype, shape, cursor)
        try:
            self.walk(spec)
        finally:
            if cursor is not None:
                cursor.close()

    # -- one tensor of known shape

    def walk(self, spec):
        self.report.tensors += 1
        try:
            self.block(spec, 0, [])
        except _Mismatch:
            self.flush_value_failures(spec)
            return
        self.flush_value_failures(spec)
        self.report.elements += spec.elements[0]

    def flush_value_failures(self, spec):
        if spec.first_failure is not None:
            count = spec.bad_elements
            self.fail(spec.first_failure if count == 1 else
                      f"{spec.first_failure} ({count:,} wrong elements in this tensor)")

    def block(self, spec, level, prefix):
        if spec.events[level] <= GROUP_EVENTS:
            self.group(spec, level, 1, prefix)
            return
        self.bracket(spec, _S, prefix)
        size = spec.shape[level]
        child = spec.events[level + 1]
        if child <= GROUP_EVENTS:
            step = max(1, GROUP_EVENTS // child)
            for begin in range(0, size, step):
                self.group(spec, level + 1, min(step, size - begin), prefix + [begin])
        else:
            for index in range(size):
                self.block(spec, level + 1, prefix + [index])
        self.bracket(spec, _E, prefix + [size])

    def bracket(self, spec, name, stack):
        """Read the one bracket event ``name`` of a block too long for one group."""
        try:
            events = self.take(1)
        except _ParseError as error:
            self.diagnose(spec, error.events, [name], stack, error.error)
        if not events or events[0][0] != name:
            self.diagnose(spec, events, [name], stack, None)

    def group(self, spec, level, repeat, stack):
        """Read ``repeat`` blocks at ``level`` whose first begins at ``stack`` (the counters of
        the open arrays); check their events against the template; compare their numbers."""
        template = _template(spec.elem, spec.shape[level:], repeat)
        if _take_values is not None and template.count:
            values = np.empty(template.count, spec.values_dtype)
            if self._events.take_values(template.letters, spec.values_kind, values):
                self.check_array(spec, values, spec.flat(stack) if stack else 0)
                return
            # else the checks below find what is wrong and word it
        try:
            events = self.take(template.length)
        except _ParseError as error:
            self.diagnose(spec, error.events, template.names, stack, error.error)
        if len(events) != template.length:
            self.diagnose(spec, events, template.names, stack, None)
        if template.elements is None:
            elements = events
        else:
            if template.brackets(events) != template.bracket_events:
                self.diagnose(spec, events, template.names, stack, None)
            elements = template.elements(events)
        if len(set(map(_NAME, elements))) > 1 or (elements and elements[0][0] != spec.elem):
            self.diagnose(spec, events, template.names, stack, None)
        if template.count:
            self.check_values(spec, elements, spec.flat(stack) if stack else 0)

    def diagnose(self, spec, events, names, stack, error):
        """Find the first event that breaks the tensor's layout, report it, resync, abort.

        ``error`` is the parse error that cut ``events`` short, if any: then the file cannot
        be read further and verification stops after reporting it at the element it hit."""
        stack = list(stack)
        for position, event in enumerate(events):
            expected = names[position] if position < len(names) else None
            got = event[0]
            if got != expected:
                if error is not None:
                    self.report.failures.append(self.layout_message(spec, stack, expected, event))
                    break
                self.fail(self.layout_message(spec, stack, expected, event))
                self.push_back(events[position:])
                self.skip_value(self.next("skipping a value"), depth=len(stack))
                raise _Mismatch()
            if got == _S:
                stack.append(0)
            elif got == _E:
                stack.pop()
                if stack:
                    stack[-1] += 1
            elif stack:
                stack[-1] += 1
        where = _at(spec.name, stack)
        text = "" if error is None else _json_error_text(error)
        if error is None or "premature EOF" in text:
            self.fatal(f"{where}: the file ends inside this tensor (truncated?)")
        self.fatal(f"{where}: invalid JSON: {text}")

    def layout_message(self, spec, stack, expected, event):
        where = _at(spec.name, stack)
        got = event[0]
        level = len(stack) - 1
        shape = list(spec.shape)
        if expected in (_N, _B) and got == _E:
            return (f"{where}: missing element: dimension {level} has {stack[-1]} elements, "
                    f"the shape {shape} says {spec.shape[level]}")
        if expected == _S and got == _E:
            return (f"{where}: missing element: dimension {level} has {stack[-1]} elements, "
                    f"the shape {shape} says {spec.shape[level]}")
        if expected == _E and got in (_N, _B, _S):
            return (f"{where}: extra element: dimension {level} should have "
                    f"{spec.shape[level]} elements (shape {shape})")
        if expected in (_N, _B) and got == _S:
            return f"{where}: an array where an element is expected (shape {shape})"
        if expected == _S and got in (_N, _B):
            return f"{where}: {_event_text(event)} where an array is expected (shape {shape})"
        want = {_N: "a number", _B: "true or false", _S: "an array",
                _E: "the end of an array"}.get(expected, expected)
        return f"{where}: {_event_text(event)} where {want} is expected (dtype torch.{spec.dtype})"

    # -- values

    def check_values(self, spec, elements, flat):
        """Check the element events of a group (all named number, or all boolean): their
        values as an array, or a failure for those that cannot be one."""
        kind = spec.kind
        if kind == "float":
            try:
                got = np.fromiter(map(_VALUE, elements), np.float64, len(elements))
            except (OverflowError, TypeError, ValueError):
                self.unconvertible(spec, list(map(_VALUE, elements)), flat, np.float64,
                                   "is not a float64")
                return
        elif kind == "int":
            values = list(map(_VALUE, elements))
            if float in set(map(type, values)):
                first = next(i for i, value in enumerate(values) if isinstance(value, float))
                count = sum(isinstance(value, float) for value in values)
                self.value_failure(spec, flat + first, count,
                                   f"{_value_text(values[first])} is not an integer "
                                   f"(dtype torch.{spec.dtype})")
                self.skip_checkpoint(spec, len(values))
                return
            try:
                got = np.array(values, dtype=spec.values_dtype)
            except OverflowError:
                self.unconvertible(spec, values, flat, spec.values_dtype,
                                   f"is outside the range of torch.{spec.dtype}")
                return
        else:
            got = np.fromiter(map(_VALUE, elements), np.bool_, len(elements))
        self.check_array(spec, got, flat)

    def check_array(self, spec, got, flat):
        """Check a group's element values (float64, int64 or bool, by the dtype's kind)."""
        if spec.kind == "float":
            self.check_floats(spec, got, flat)
        elif spec.kind == "int":
            self.check_ints(spec, got, flat)
        elif spec.cursor is not None:
            want = spec.cursor.take(len(got))
            bad = got != want
            if bad.any():
                self.mismatches(spec, got, want, bad, flat, None)

    def check_ints(self, spec, got, flat):
        if spec.cursor is not None:
            want = spec.cursor.take(len(got))
            bad = got != want
            reason = None
        elif spec.dtype in ("int64", "uint64"):
            return                      # the array's own range, checked as it was made
        else:
            low, high = _INT_RANGES[spec.dtype]
            want = None
            bad = (got < low) | (got > high)
            reason = f"is outside the range of torch.{spec.dtype}"
        if bad.any():
            self.mismatches(spec, got, want, bad, flat, reason)

    @staticmethod
    def skip_checkpoint(spec, count):
        if spec.cursor is not None:
            spec.cursor.take(count)

    def unconvertible(self, spec, values, flat, dtype, reason):
        count = 0
        first = None
        for i, value in enumerate(values):
            try:
                np.array([value], dtype=dtype)
            except (OverflowError, TypeError, ValueError):
                count += 1
                first = i if first is None else first
        first = 0 if first is None else first
        self.value_failure(spec, flat + first, max(count, 1),
                           f"{_value_text(values[first])} {reason}")
        self.skip_checkpoint(spec, len(values))

    def decide_mode(self, disagree, got, dtype):
        """The float format, deciding it at the first values that are not widened elements.

        Exact tokens are widened elements, so while every value is one both modes agree. At
        the first chunk where some are not, the mode is "shortest" when most of those values
        are exactly what the shortest text of their rounding parses to, else "exact" (and they
        are failures). A corrupted exact token is rarely a shortest text, and a float32 token
        under a float16 meta never is."""
        if self.mode is not None or not disagree.any():
            return self.mode
        candidates = got[disagree]
        consistent = np.count_nonzero(_is_shortest_text(candidates, dtype))
        self.mode = "shortest" if consistent * 2 > len(candidates) else "exact"
        self.report.float_format_detected = True
        return self.mode

    def check_floats(self, spec, got, flat):
        self.report.floats = True
        fmt = _FLOAT_FORMATS[spec.dtype]
        cursor = spec.cursor
        if cursor is not None:
            want = cursor.take(len(got))
            bad = got.view(_U64) != want.view(_U64)
            self.narrow_floats |= fmt is not None
            if fmt is not None and self.decide_mode(bad, got, spec.dtype) == "shortest" and bad.any():
                rounded, midpoint = round_to_format(got, spec.dtype)
                bad = rounded.view(_U64) != want.view(_U64)
                if midpoint.any():
                    where = np.flatnonzero(midpoint)
                    self.midpoints.append((spec.name, spec.dtype, spec.shape, flat + where,
                                           got[where], want[where]))
                    bad[where] = False
            if bad.any():
                self.mismatches(spec, got, want, bad, flat, None)
            return
        if fmt is None:
            bad = ~np.isfinite(got)
            if bad.any():
                self.mismatches(spec, got, None, bad, flat, "is not a finite float64")
            return
        self.narrow_floats = True
        rounded, _ = round_to_format(got, spec.dtype)
        not_exact = rounded != got
        if self.decide_mode(not_exact, got, spec.dtype) == "shortest":
            bad = ~np.isfinite(rounded)
            reason = f"is outside the range of torch.{spec.dtype}"
        else:
            bad = not_exact | ~np.isfinite(got)
            reason = f"is not a torch.{spec.dtype} value (exact floats are the widened element)"
        if bad.any():
            self.mismatches(spec, got, None, bad, flat, reason)

    def mismatches(self, spec, got, want, bad, flat, reason):
        where = np.flatnonzero(bad)
        first = int(where[0])
        if reason is None:
            text = (f"{_value_text(got[first])}, but the checkpoint has "
                    f"{_value_text(want[first])}")
            if spec.kind == "float" and self.mode == "shortest" and spec.dtype != "float64":
                text += f" (the token does not round to it at torch.{spec.dtype})"
        else:
            text = f"{_value_text(got[first])} {reason}"
        self.value_failure(spec, flat + first, len(where), text)

    def value_failure(self, spec, flat, count, text):
        """A wrong element: the first one stops verification; under all_failures the tensor
        is read to its end and gets one line with the count of wrong elements."""
        message = f"{_at(spec.name, spec.unravel(flat))}: {text}"
        if not self.all_failures:
            self.fail(message)
        if spec.first_failure is None:
            spec.first_failure = message
        spec.bad_elements += count

    # -- a tensor whose shape nothing states (no meta, no checkpoint)

    def discover(self, key):
        """Check a value of unknown shape at group speed, learning its shape as it goes.

        The first descent gives the number of dimensions and the element's kind. Then, from
        the innermost array outwards, the children of the first array at each level are read
        in template groups (their own shape is known by then) until an ``]`` falls on a child
        boundary: that array's length is the dimension's size, and every later array must
        match it. Empty arrays and scalars go to the per-event walk."""
        consumed = []
        while True:
            event = self.next(_at(key, [0] * len(consumed)))
            consumed.append(event)
            if event[0] != _S:
                break
        ndim = len(consumed) - 1
        if ndim == 0 or event[0] not in (_N, _B):
            self.push_back(consumed)
            self.walk_unknown(key)
            return
        self.push_back([event])
        elem = event[0]
        kind = "bool" if elem == _B else ("int" if type(event[1]) is int else "float")
        self.report.floats |= kind == "float"
        self.report.tensors += 1
        dims = []
        for level in range(ndim - 1, -1, -1):
            size = self.unknown_children(key, elem, kind, tuple(dims), 0 if not dims else 1,
                                         [0] * level)
            if size is None:
                return
            dims.insert(0, size)
        total = 1
        for size in dims:
            total *= size
        self.report.elements += total

    def unknown_children(self, key, elem, kind, inner, done, prefix):
        """Read the rest of an array whose children are blocks of shape ``inner``, ``done`` of
        them already read, up to and with its ``]``. Returns its length, or None on failure."""
        length = 1
        for size in reversed(inner):
            length = 2 + size * length
        per_block = 1
        for size in inner:
            per_block *= size
        repeat = max(1, GROUP_EVENTS // length)
        letter, values_dtype = _VALUE_ARRAYS[kind]
        while True:
            template = _template(elem, inner, repeat)
            if _take_values is not None and template.count and self._events.take_values(
                    template.letters, letter, np.empty(template.count, values_dtype)):
                done += repeat          # whole blocks, their elements all of the tensor's kind
                continue
            error = None
            try:
                events = self.take(template.length)
            except _ParseError as failure:    # the array may still end before the error
                events, error = failure.events, failure.error
            if error is None and self.matches(template, events, elem):
                if not self.element_kinds(key, kind, template.elements(events)
                                          if template.elements else events,
                                          prefix + [done], inner, per_block):
                    return None
                done += repeat
                continue
            names = template.names
            position = next((i for i, event in enumerate(events)
                             if i >= len(names) or event[0] != names[i]), len(events))
            blocks = position // length
            if position % length == 0 and position < len(events) and events[position][0] == _E:
                if blocks:
                    head = _template(elem, inner, blocks)
                    picked = head.elements(events) if head.elements else events[:blocks]
                    if not self.element_kinds(key, kind, picked, prefix + [done], inner,
                                              per_block):
                        return None
                self.push_back(events[position + 1:])
                return done + blocks
            self.unknown_failure(key, events, names, prefix + [done], error)
            return None

    @staticmethod
    def matches(template, events, elem):
        if len(events) != template.length:
            return False
        if template.elements is None:
            elements = events
        else:
            if template.brackets(events) != template.bracket_events:
                return False
            elements = template.elements(events)
        return not elements or (len(set(map(_NAME, elements))) == 1 and elements[0][0] == elem)

    def element_kinds(self, key, kind, elements, start, inner, per_block):
        """Without a dtype, a tensor's numbers must all be integers or all be floats."""
        if kind == "bool":
            return True
        want = float if kind == "float" else int
        types = set(map(type, map(_VALUE, elements)))
        if types == {want} or not types:
            return True
        position = next(i for i, event in enumerate(elements) if type(event[1]) is not want)
        block, within = divmod(position, per_block)
        index = start[:-1] + [start[-1] + block]
        rest = []
        for size in reversed(inner):
            rest.insert(0, within % size)
            within //= size
        self.fail(f"{_at(key, index + rest)}: {_event_text(elements[position])} in a tensor of "
                  f"{'floats' if kind == 'float' else 'integers'}")
        self.skip_rest_of_value(len(start) + len(inner))
        return False

    def skip_rest_of_value(self, depth):
        while depth > 0:
            name = self.next("skipping a value")[0]
            if name in (_S, "start_map"):
                depth += 1
            elif name in (_E, "end_map"):
                depth -= 1

    def unknown_failure(self, key, events, names, stack, error):
        """Like ``diagnose``, for a value whose shape was being learned."""
        stack = list(stack)
        for position, event in enumerate(events):
            expected = names[position] if position < len(names) else None
            got = event[0]
            if got != expected:
                level = len(stack) - 1
                if expected in (_N, _B, _S) and got == _E:
                    problem = (f"missing element: dimension {level} has {stack[-1]} elements here, "
                               "more in the first array at this depth")
                elif expected == _E and got in (_N, _B, _S):
                    problem = (f"extra element: the first array at this depth (dimension {level}) "
                               f"has {stack[-1]}")
                else:
                    want = {_N: "a number", _B: "true or false", _S: "an array",
                            _E: "the end of an array"}.get(expected, expected)
                    problem = f"{_event_text(event)} where {want} is expected"
                message = f"{_at(key, stack)}: {problem}"
                if error is not None:
                    self.report.failures.append(message)
                    break
                self.fail(message)
                self.push_back(events[position:])
                self.skip_value(self.next("skipping a value"), depth=len(stack))
                return
            if got == _S:
                stack.append(0)
            elif got == _E:
                stack.pop()
                if stack:
                    stack[-1] += 1
            elif stack:
                stack[-1] += 1
        where = _at(key, stack)
        text = "" if error is None else _json_error_text(error)
        if error is None or "premature EOF" in text:
            self.fatal(f"{where}: the file ends inside this tensor (truncated?)")
        self.fatal(f"{where}: invalid JSON: {text}")

    def walk_unknown(self, key):
        """Check that the value is a rectangular nested array of one kind of element."""
        self.report.tensors += 1
        dims = []          # dims[d]: the size of every array at depth d, once the first closes
        leaf = None        # the depth where elements are
        kind = None        # "number-int", "number-float" or "boolean"
        stack = []
        count = 0
        while True:
            event = self.next(_at(key, stack))
            name, value = event
            depth = len(stack)
            problem = None
            if name == _S:
                if leaf is not None and depth >= leaf:
                    problem = "an array where an element is expected"
                else:
                    stack.append(0)
                    if len(dims) < len(stack):
                        dims.append(None)
                    continue
            elif name == _E:
                size = stack.pop()
                if dims[depth - 1] is None:
                    dims[depth - 1] = size
                elif size != dims[depth - 1]:
                    stack.append(size)
                    problem = (f"missing element: dimension {depth - 1} has {size} elements, "
                               f"earlier arrays at this depth have {dims[depth - 1]}")
                if problem is None:
                    if not stack:
                        break
                    stack[-1] += 1
                    continue
            elif name in (_N, _B):
                this = "boolean" if name == _B else (
                    "number-int" if isinstance(value, int) else "number-float")
                if leaf is None:
                    leaf = depth
                if depth != leaf:
                    problem = f"{_event_text(event)} where an array is expected"
                elif kind is not None and this != kind:
                    problem = f"{_event_text(event)} in a tensor of {kind.split('-')[-1]}s"
                elif stack and dims[depth - 1] is not None and stack[-1] >= dims[depth - 1]:
                    problem = (f"extra element: dimension {depth - 1} has "
                               f"{dims[depth - 1]} elements elsewhere")
                elif this == "number-float" and not np.isfinite(value):
                    problem = f"{_event_text(event)} is not finite"
                else:
                    kind = this
                    count += 1
                    if not stack:
                        break
                    stack[-1] += 1
                    continue
            else:
                problem = f"{_event_text(event)} where an element is expected"
            self.fail(f"{_at(key, stack)}: {problem}")
            self.skip_value(event, depth=len(stack))
            return
        self.report.elements += count

    # -- the exact second pass for midpoints (shortest mode)

    def settle_midpoints(self, stream):
        """Decide the midpoint elements from their exact decimal tokens (a second pass)."""
        pending = {}
        for name, dtype, shape, flats, got, want in self.midpoints:
            for flat, value, wanted in zip(flats.tolist(), got.tolist(), want.tolist()):
                pending.setdefault(name, {})[flat] = (dtype, shape, value, wanted)
        depth = 0
        top = None
        current = key = None
        counter = 0
        for name, value in self.backend.basic_parse(stream, use_float=False):
            if name in ("start_map", _S):
                depth += 1
            elif name in ("end_map", _E):
                depth -= 1
            elif name == "map_key":
                if depth == 1:
                    top = value
                    current = None
                elif depth == 2 and top == "params":
                    current, key, counter = pending.get(value), value, 0
            elif current is not None and name in (_N, _B):
                found = current.get(counter)
                counter += 1
                if found is None:
                    continue
                dtype, shape, parsed, wanted = found
                exact = _decide_midpoint(value, parsed, dtype)
                if np.float64(exact).view(_U64) != np.float64(wanted).view(_U64):
                    index = _Spec(key, dtype, shape).unravel(counter - 1)
                    self.fail(f"{_at(key, index)}: {value}, but the checkpoint has "
                              f"{_value_text(wanted)} (the token does not round to it at "
                              f"torch.{dtype})")


class _Mismatch(Exception):
    """A tensor failed; the reader has skipped to the end of its value."""


def verify(path, against=None, *, key=None, keep_prefix=False, strip_prefixes=(),
           float_format=None, all_failures=False, allow_slow_backend=False,
           chunk_elements=1 << 16, progress=None, jobs=1):
    """Check the export at ``path``: strict JSON, layout, shapes and dtypes against its meta,
    and with ``against`` (a checkpoint, read with the export's name rules) every value.

    Returns a VerifyReport; failures are one-line strings naming the key and the element's
    index. Raises StreamExportError when ijson's C backend is missing (unless
    ``allow_slow_backend``) and the checkpoint's own errors (CheckpointError) when it cannot
    be opened. ``progress``: None, "bar" or "log", over the bytes read (see export).
    ``jobs``: processes reading parts of a large export at once (_verify_parallel); the
    report is the same as with one. They are started with multiprocessing's "spawn", so a
    script that asks for more than one must call verify under ``if __name__ == "__main__":``.
    """
    if float_format is not None and float_format not in _FLOAT_MODES:
        raise ValueError(f"float_format must be 'exact' or 'shortest', not {float_format!r}")
    progress = check_kind(progress)
    started = time.perf_counter()
    options = dict(against=against, key=key, keep_prefix=keep_prefix,
                   strip_prefixes=strip_prefixes, float_format=float_format,
                   all_failures=all_failures, chunk_elements=chunk_elements, progress=progress)
    backend = _load_backend(allow_slow_backend)
    if jobs > 1:
        from ._verify_parallel import verify_in_parts
        report = verify_in_parts(backend, path, jobs, options)
        if report is not None:
            report.seconds = time.perf_counter() - started
            return report
    report, verifier = _verify_with(backend, path, **options)
    overflowed = verifier.integer_overflow
    if overflowed and backend is not _python_backend():
        # Only uint64 elements >= 2**63 (or a broken file) get here: read it all again with
        # ijson's pure-Python backend, ~40x slower, whose integers have no limit.
        report, _ = _verify_with(_python_backend(), path, **options)
    report.seconds = time.perf_counter() - started
    return report


class _Reading:
    """A binary file whose reads are counted on a progress display."""

    def __init__(self, stream, progress):
        self._stream, self._progress = stream, progress

    def read(self, size):
        data = self._stream.read(size)
        self._progress.update(len(data))
        return data


def _python_backend():
    import ijson.backends.python
    return ijson.backends.python


def _verify_with(backend, path, *, against, key, keep_prefix, strip_prefixes, float_format,
                 all_failures, chunk_elements, progress, opener=None, partial=False):
    """One reading of the export with ``backend``: (report, the _Verifier, whose
    ``integer_overflow`` says whether the parser stopped at an integer too large for it).
    ``opener()`` opens the text to read (default: the file at ``path``); ``partial``: it
    holds only some of the params (see _Verifier)."""
    report = VerifyReport(path, against)
    report.backend = backend.__name__.rsplit(".", 1)[-1]
    path = os.fspath(path)
    opener = opener or (lambda: open(path, "rb"))
    try:
        report.bytes = os.path.getsize(path)
        stream = opener()
    except OSError as error:
        raise StreamExportError(f"{path}: cannot read: {error.strerror or error}") from None
    verifier = _Verifier(path, report, backend, float_format, all_failures, chunk_elements,
                         partial)
    checkpoint = None
    collecting = gc.isenabled()
    try:
        with stream:
            if against is not None:
                from .sources import open_checkpoint
                checkpoint = open_checkpoint(against, key=key, keep_prefix=keep_prefix,
                                             strip_prefixes=strip_prefixes)
                verifier.checkpoint = checkpoint
            shown = None
            if progress:
                shown = progress_for(progress, report.bytes, "bytes", "verify: ")
            gc.disable()    # the groups hold many tuples; the cyclic GC would walk them in vain
            try:
                verifier.run(stream if shown is None else _Reading(stream, shown))
            except _Stop:
                pass
            finally:
                if collecting:
                    gc.enable()
                if shown is not None:
                    shown.close()
        if verifier.midpoints and verifier.readable and (all_failures or not report.failures):
            with opener() as again:
                try:
                    verifier.settle_midpoints(again)
                except _Stop:
                    pass
    finally:
        if checkpoint is not None:
            checkpoint.close()
    report.float_format = verifier.mode
    if verifier.mode is None and verifier.narrow_floats:
        report.float_format = "exact"     # every narrow float was its widened element
    return report, verifier
