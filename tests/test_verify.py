"""streamexport.verify: good exports pass; every corruption of issue 4 is caught and located.

Outputs are made from real checkpoints: the exact ones with the output contract's reference
(json.dumps of the adapter's payload), the shortest ones with streamexport.export. Each
corruption edits the text of a good output at a known element and checks that the failure
names the key and that element's index.
"""
import importlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from streamexport.errors import StreamExportError
from streamexport.verify import round_to_format, verify

# the module (the package's attribute streamexport.verify is the function)
V = importlib.import_module("streamexport.verify")

NUMBER = re.compile(rb"-?[0-9][0-9.eE+-]*|true|false")


def make_state(seed=0):
    gen = torch.Generator().manual_seed(seed)
    bias = torch.randn(5, generator=gen)
    bias[0] = -0.0
    bias[1] = 0.1
    state = {
        "fc.weight": torch.randn(6, 5, generator=gen),
        "fc.bias": bias,
        "emb": torch.randn(4, 3, generator=gen).to(torch.float16),
        "ln": torch.randn(7, generator=gen).to(torch.bfloat16),
        "f64": torch.randn(2, 3, generator=gen, dtype=torch.float64),
        "steps": torch.tensor(123456789012),
        "ids": torch.randint(-1000, 1000, (3, 4), generator=gen, dtype=torch.int32),
        "mask": torch.rand(2, 3, generator=gen) > 0.5,
        "u8": torch.arange(250, 255, dtype=torch.uint8),
        "empty": torch.zeros(2, 0),
        "f8": torch.tensor([0.5, -1.75, 448.0, 0.0078125]).to(torch.float8_e4m3fn),
        "big": torch.randn(30, 40, generator=gen),
        "long": torch.randn(300, generator=gen),
        "tr": torch.randn(4, 6, generator=gen).t(),               # not contiguous
    }
    state["tied"] = state["fc.weight"]                           # one storage, two names
    return state


def reference_text(state, no_meta=False):
    payload = {"params": {name: t.tolist() for name, t in state.items()}}
    if not no_meta:
        payload["meta"] = {name: {"dtype": str(t.dtype), "shape": list(t.shape)}
                           for name, t in state.items()}
    return json.dumps(payload, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


@pytest.fixture(autouse=True, params=["c", "python"])
def event_loop(request, monkeypatch):
    """Every test runs with the C loop over a group's events and with the Python path alone
    (what a build without a compiler uses, and where the C loop hands unusual groups)."""
    if request.param == "python":
        monkeypatch.setattr(V, "_take_values", None)
    elif V._take_values is None:
        pytest.skip("the C event loop (streamexport._verify_events) is not built")
    return request.param


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("verify")
    state = make_state()
    checkpoint = root / "model.pt"
    torch.save(state, checkpoint)
    exact = root / "exact.json"
    exact.write_bytes(reference_text(state))
    shortest = root / "shortest.json"
    import streamexport
    streamexport.export(str(checkpoint), str(shortest), float_format="shortest", fsync=False)
    return {"root": root, "state": state, "ckpt": str(checkpoint), "exact": str(exact),
            "shortest": str(shortest), "text": exact.read_bytes()}


def value_span(text, key, flat):
    """Byte range of element ``flat`` (row-major) of param ``key`` in the document ``text``."""
    params = text.index(b'"params":')
    start = text.index(json.dumps(key).encode() + b":", params) + len(json.dumps(key)) + 1
    match = None
    for match_index, match in enumerate(NUMBER.finditer(text, start)):
        if match_index == flat:
            return match.start(), match.end()
    raise AssertionError("element not found")


def write(files, name, data):
    path = files["root"] / name
    path.write_bytes(data)
    return str(path)


def edit(files, key, flat, replacement, name="bad.json", source="text"):
    text = files[source] if source == "text" else Path(files[source]).read_bytes()
    start, end = value_span(text, key, flat)
    return write(files, name, text[:start] + replacement(text[start:end]) + text[end:])


def only_failure(report):
    assert not report.ok
    assert len(report.failures) == 1, report.failures
    return report.failures[0]


# ---- good outputs pass ------------------------------------------------------------------

@pytest.mark.parametrize("against", [False, True])
def test_exact_output_passes(files, against):
    report = verify(files["exact"], against=files["ckpt"] if against else None)
    assert report.ok, report.failures
    state = files["state"]
    assert report.tensors == len(state)
    assert report.elements == sum(t.numel() for t in state.values())
    assert report.bytes == len(files["text"])
    assert report.float_format == "exact"
    assert report.backend == "yajl2_c"


@pytest.mark.parametrize("against", [False, True])
def test_shortest_output_passes_and_is_detected(files, against):
    report = verify(files["shortest"], against=files["ckpt"] if against else None)
    assert report.ok, report.failures
    assert report.float_format == "shortest" and report.float_format_detected
    given = verify(files["shortest"], against=files["ckpt"] if against else None,
                   float_format="shortest")
    assert given.ok and not given.float_format_detected


def test_exporter_output_passes(files):
    import streamexport
    out = files["root"] / "exported.json"
    streamexport.export(files["ckpt"], str(out), fsync=False)
    assert verify(str(out), against=files["ckpt"]).ok


def test_shortest_output_is_not_exact(files):
    # shortest tokens are not the widened values: in exact mode they are failures
    report = verify(files["shortest"], float_format="exact")
    assert "is not a torch.float32 value" in only_failure(report)
    report = verify(files["shortest"], against=files["ckpt"], float_format="exact")
    assert "but the checkpoint has" in only_failure(report)


def test_no_meta_output_passes(files):
    path = write(files, "nometa.json", reference_text(files["state"], no_meta=True))
    assert verify(path).ok
    assert verify(path, against=files["ckpt"]).ok


@pytest.mark.parametrize("group", [3, 7, 40, 1 << 16])
def test_group_sizes_agree(files, monkeypatch, group):
    """Groups smaller than a row, a row, or a whole tensor give the same verdicts."""
    monkeypatch.setattr(V, "GROUP_EVENTS", group)
    assert verify(files["exact"], against=files["ckpt"]).ok
    assert verify(files["shortest"], against=files["ckpt"]).ok
    bad = edit(files, "big", 5 * 40 + 17, lambda tok: b"7" + tok[1:] if tok[:1] != b"-"
               else b"-7" + tok[2:])
    assert '"big"[5, 17]' in only_failure(verify(bad, against=files["ckpt"]))
    removed = edit(files, "big", 3 * 40 + 39, lambda tok: b"", name="removed.json")
    text = Path(removed).read_bytes().replace(b",]", b"]")
    removed = write(files, "removed.json", text)
    message = only_failure(verify(removed, against=files["ckpt"]))
    assert '"big"[3, 39]' in message and "missing element" in message


@pytest.mark.parametrize("flat", [0, 6, 7, 13, 14, 299])
def test_failures_at_group_boundaries(files, monkeypatch, flat):
    """Groups of 7 elements: a failure on either side of a boundary names its own index."""
    monkeypatch.setattr(V, "GROUP_EVENTS", 7)
    cases = [(lambda tok: b"true", f'"long"[{flat}]: true where a number is expected'),
             (lambda tok: b"12.5", f'"long"[{flat}]: 12.5, but the checkpoint has'),
             (lambda tok: b"12", f'"long"[{flat}]: 12.0, but the checkpoint has'),
             (lambda tok: b"[]", f'"long"[{flat}]: an array where an element is expected')]
    for replace, start in cases:
        message = only_failure(verify(edit(files, "long", flat, replace), against=files["ckpt"]))
        assert message.startswith(start), message


def test_integer_tokens_in_a_float_tensor_are_numbers(files):
    # JSON has one kind of number: "2" is 2.0 in a float tensor (the C loop hands such a group
    # to the Python path, which accepts it)
    state = {"w": torch.tensor([2.0, 0.5, -3.0])}
    checkpoint = files["root"] / "ints_as_floats.pt"
    torch.save(state, checkpoint)
    text = reference_text(state).replace(b"2.0", b"2").replace(b"-3.0", b"-3")
    assert b"[2,0.5,-3]" in text
    assert verify(write(files, "ints_as_floats.json", text), against=str(checkpoint)).ok


def test_integer_beyond_int64(files):
    # yajl refuses it (with use_float, ijson leaves integers to yajl's long long); verify
    # reads the file again with ijson's Python backend, which takes any integer
    path = edit(files, "ids", 6, lambda tok: b"99999999999999999999")
    report = verify(path, against=files["ckpt"])
    assert only_failure(report) == \
        '"ids"[1, 2]: 99999999999999999999 is outside the range of torch.int32'
    assert report.backend == "python"


@pytest.fixture(scope="module")
def unsigned(tmp_path_factory):
    root = tmp_path_factory.mktemp("unsigned")
    state = {"u16": torch.tensor([0, 65535], dtype=torch.uint16),
             "u32": torch.tensor([[1, 2**32 - 1]], dtype=torch.uint32),
             "small": torch.tensor([0, 2**63 - 1], dtype=torch.uint64),
             "u64": torch.tensor([2**64 - 1, 2**63, 10**19, 5], dtype=torch.uint64)}
    checkpoint = root / "unsigned.pt"
    torch.save(state, checkpoint)
    good = root / "good.json"
    good.write_bytes(reference_text(state))
    return {"root": root, "ckpt": str(checkpoint), "good": str(good),
            "text": good.read_bytes()}


def test_unsigned_integers_up_to_uint64(unsigned):
    for against in (None, unsigned["ckpt"]):
        report = verify(unsigned["good"], against=against)
        assert report.ok, report.failures
        assert report.elements == 2 + 2 + 2 + 4
        assert report.backend == "python"       # yajl stops at 2**63 (see above)
    text = unsigned["text"]
    for old, new, message in [
            (b"18446744073709551615", b"18446744073709551614",
             '"u64"[0]: 18446744073709551614, but the checkpoint has 18446744073709551615'),
            (b"18446744073709551615", b"18446744073709551616",
             '"u64"[0]: 18446744073709551616 is outside the range of torch.uint64'),
            (b"[0,65535]", b"[0,65536]", '"u16"[1]: 65536 is outside the range of torch.uint16'),
            (b"[0,65535]", b"[-1,65535]", '"u16"[0]: -1 is outside the range of torch.uint16'),
            (b"[0,9223372036854775807]", b"[-1,9223372036854775807]",
             '"small"[0]: -1 is outside the range of torch.uint64')]:
        assert text.count(old) == 1
        path = unsigned["root"] / "bad.json"
        path.write_bytes(text.replace(old, new))
        against = unsigned["ckpt"] if "checkpoint" in message else None
        assert only_failure(verify(str(path), against=against)) == message


@pytest.mark.parametrize("float_format", ["exact", "shortest"])
def test_every_finite_pattern_of_the_fnuz_and_e8m0_float8s(tmp_path, float_format):
    import streamexport
    patterns = torch.arange(256, dtype=torch.int32).to(torch.uint8)
    state = {"e4m3fnuz": patterns[patterns != 0x80].view(torch.float8_e4m3fnuz),
             "e5m2fnuz": patterns[patterns != 0x80].view(torch.float8_e5m2fnuz),
             "e8m0fnu": patterns[:255].view(torch.float8_e8m0fnu)}
    checkpoint, out = tmp_path / "f8.pt", tmp_path / "f8.json"
    torch.save(state, checkpoint)
    streamexport.export(str(checkpoint), str(out), float_format=float_format, fsync=False)
    for against in (str(checkpoint), None):
        report = verify(str(out), against=against)
        assert report.ok, report.failures
        assert report.float_format == float_format and report.elements == 255 * 3
    # one element changed to its neighbour's token: e8m0fnu 2**-126 -> 2**-125's
    text = out.read_bytes()
    tokens = {"exact": (b"1.1754943508222875e-38", b"2.350988701644575e-38"),
              "shortest": (b"1e-38", b"2e-38")}[float_format]
    start = text.index(b'"e8m0fnu":[')
    at = text.index(b"," + tokens[0] + b",", start) + 1
    bad = tmp_path / "bad.json"
    bad.write_bytes(text[:at] + tokens[1] + text[at + len(tokens[0]):])
    message = only_failure(verify(str(bad), against=str(checkpoint), float_format=float_format))
    assert message.startswith('"e8m0fnu"[1]: ' + tokens[1].decode()), message


def test_uint64_below_2_63_stays_with_yajl(unsigned):
    state = {"small": torch.tensor([0, 2**63 - 1], dtype=torch.uint64)}
    path = unsigned["root"] / "small.json"
    path.write_bytes(reference_text(state))
    report = verify(str(path))
    assert report.ok and report.backend == "yajl2_c"


# ---- each corruption of issue 4 is caught, with key and index ------------------------------

def test_truncated_file(files):
    start, _ = value_span(files["text"], "fc.weight", 2 * 5 + 3)
    path = write(files, "truncated.json", files["text"][:start])
    for against in (None, files["ckpt"]):
        message = only_failure(verify(path, against=against))
        assert '"fc.weight"[2, 3]' in message and "truncated" in message


@pytest.mark.parametrize("against", [False, True])
def test_one_digit_changed(files, against):
    def change(token):
        digit = re.search(rb"[0-9]", token).start()
        new = b"8" if token[digit:digit + 1] != b"8" else b"3"
        return token[:digit] + new + token[digit + 1:]
    path = edit(files, "fc.weight", 4 * 5 + 2, change)
    report = verify(path, against=files["ckpt"] if against else None)
    message = only_failure(report)
    assert message.startswith('"fc.weight"[4, 2]: ')
    if against:
        assert "but the checkpoint has" in message


def test_one_digit_changed_in_shortest_output(files):
    def change(token):
        digit = re.search(rb"[1-9]", token).start()
        new = b"9" if token[digit:digit + 1] != b"9" else b"2"
        return token[:digit] + new + token[digit + 1:]
    path = edit(files, "ln", 3, change, source="shortest")
    message = only_failure(verify(path, against=files["ckpt"]))
    assert message.startswith('"ln"[3]: ') and "does not round to it at torch.bfloat16" in message


def test_negative_zero_is_not_zero(files):
    path = edit(files, "fc.bias", 0, lambda tok: tok.replace(b"-", b""))
    assert files["state"]["fc.bias"][0].item() == 0.0
    message = only_failure(verify(path, against=files["ckpt"]))
    assert message.startswith('"fc.bias"[0]: 0.0, but the checkpoint has -0.0')


def test_element_removed(files):
    start, end = value_span(files["text"], "fc.weight", 1 * 5 + 2)
    text = files["text"][:start] + files["text"][end + 1:]      # the token and its comma
    path = write(files, "removed.json", text)
    for against in (None, files["ckpt"]):
        message = only_failure(verify(path, against=against))
        assert message.startswith('"fc.weight"[1, 4]: missing element'), message


def test_element_added(files):
    start, _ = value_span(files["text"], "fc.weight", 3 * 5 + 1)
    text = files["text"][:start] + b"1.0," + files["text"][start:]
    path = write(files, "added.json", text)
    message = only_failure(verify(path, against=files["ckpt"]))
    assert message.startswith('"fc.weight"[3, 5]: extra element'), message


def test_nan_token(files):
    path = edit(files, "fc.weight", 2 * 5 + 4, lambda tok: b"NaN")
    message = only_failure(verify(path))
    assert message.startswith('"fc.weight"[2, 4]: invalid JSON'), message


def test_infinity_token(files):
    path = edit(files, "long", 100, lambda tok: b"-Infinity")
    assert only_failure(verify(path)).startswith('"long"[100]: invalid JSON')


def test_true_in_a_float_tensor(files):
    path = edit(files, "fc.weight", 7, lambda tok: b"true")
    for against in (None, files["ckpt"]):
        message = only_failure(verify(path, against=against))
        assert message.startswith('"fc.weight"[1, 2]: true where a number is expected'), message


def test_float_in_an_integer_tensor(files):
    path = edit(files, "ids", 5, lambda tok: tok + b".5")
    message = only_failure(verify(path))
    assert message.startswith('"ids"[1, 1]: ') and "is not an integer" in message


def test_number_in_a_bool_tensor(files):
    path = edit(files, "mask", 4, lambda tok: b"1")
    assert only_failure(verify(path)).startswith('"mask"[1, 1]: the number 1 where true or false')


def test_integer_changed(files):
    path = edit(files, "steps", 0, lambda tok: tok[:-1] + (b"3" if tok[-1:] != b"3" else b"4"))
    assert only_failure(verify(path, against=files["ckpt"])).startswith('"steps": 12345678901')


def test_key_missing_from_params(files):
    start = files["text"].index(b'"fc.bias":[', files["text"].index(b'"params":'))
    end = files["text"].index(b"]", start) + 2
    path = write(files, "missing.json", files["text"][:start] + files["text"][end:])
    message = only_failure(verify(path))
    assert message == '"fc.bias": in meta but missing from params'


def test_key_missing_everywhere(files):
    state = dict(files["state"])
    del state["fc.bias"]
    path = write(files, "missing.json", reference_text(state))
    assert verify(path).ok
    message = only_failure(verify(path, against=files["ckpt"]))
    assert message == '"fc.bias": in the checkpoint but missing from the output'


def test_extra_key(files):
    text = files["text"].replace(b'"params":{', b'"params":{"aaa":[1.0,2.0],')
    path = write(files, "extra.json", text)
    assert only_failure(verify(path)) == '"aaa": in params but not in meta'
    report = verify(path, against=files["ckpt"], all_failures=True)
    assert report.failures == ['"aaa": in params but not in meta',
                               '"aaa": in the output but not in the checkpoint']


def test_meta_dtype_changed(files):
    old = b'"fc.weight":{"dtype":"torch.float32"'
    path = write(files, "dtype.json", files["text"].replace(old, old.replace(b"float32", b"int64")))
    message = only_failure(verify(path))
    assert message.startswith('"fc.weight"[0, 0]: ') and "is not an integer" in message
    message = only_failure(verify(path, against=files["ckpt"]))
    assert message == ('meta of "fc.weight": torch.int64 [6, 5], but the checkpoint has '
                       'torch.float32 [6, 5]')
    path = write(files, "dtype.json", files["text"].replace(old, old.replace(b"32", b"16")))
    message = only_failure(verify(path))       # float32 values are not float16 values
    assert message.startswith('"fc.weight"[0, 0]: ') and "not a torch.float16 value" in message


def test_meta_shape_changed(files):
    old = b'"fc.weight":{"dtype":"torch.float32","shape":[6,5]}'
    path = write(files, "shape.json", files["text"].replace(old, old.replace(b"[6,5]", b"[5,6]")))
    message = only_failure(verify(path))
    assert message.startswith('"fc.weight"[0, 5]: missing element'), message
    message = only_failure(verify(path, against=files["ckpt"]))
    assert message.startswith('meta of "fc.weight": torch.float32 [5, 6], but the checkpoint')


@pytest.mark.parametrize("tail", [b"x", b"{}", b"]", b' {"a":1}'])
def test_trailing_data(files, tail):
    path = write(files, "trailing.json", files["text"] + tail)
    assert only_failure(verify(path)).startswith("trailing data after the document")


def test_trailing_whitespace_is_fine(files):
    assert verify(write(files, "ws.json", files["text"] + b"\n")).ok


def test_duplicate_key_in_params(files):
    params = files["text"].index(b'"params":{') + len(b'"params":{')
    start = files["text"].index(b'"fc.bias":[', params)
    end = files["text"].index(b"]", start) + 2
    text = files["text"][:end] + files["text"][start:end] + files["text"][end:]
    path = write(files, "dup.json", text)
    for against in (None, files["ckpt"]):
        assert only_failure(verify(path, against=against)) == 'duplicate key "fc.bias" in params'


def test_duplicate_key_in_meta_and_top_level(files):
    entry = b'"ids":{"dtype":"torch.int32","shape":[3,4]},'
    assert entry in files["text"]
    path = write(files, "dup.json", files["text"].replace(entry, entry + entry))
    assert only_failure(verify(path)) == 'duplicate key "ids" in meta'
    path = write(files, "dup.json", files["text"][:-1] + b',"params":{}}')
    assert only_failure(verify(path)) == 'duplicate top-level key "params"'


def test_all_failures_reports_several(files):
    text = files["text"]
    for key, flat, new in (("long", 250, b"true"), ("big", 45, b"12.5"), ("fc.weight", 3, b"0.5"),
                           ("big", 46, b"-12.5")):
        start, end = value_span(text, key, flat)
        text = text[:start] + new + text[end:]
    text = text.replace(b'"params":{', b'"params":{"aaa":[1.0],')
    path = write(files, "many.json", text)
    report = verify(path, against=files["ckpt"], all_failures=True)
    assert report.failures[:2] == ['"aaa": in params but not in meta',
                                   '"aaa": in the output but not in the checkpoint']
    rest = report.failures[2:]
    assert len(rest) == 3, rest
    assert rest[0].startswith('"big"[1, 5]: 12.5, but the checkpoint has ')
    assert rest[0].endswith("(2 wrong elements in this tensor)")
    assert rest[1].startswith('"fc.weight"[0, 3]: 0.5, but the checkpoint has ')
    assert rest[2].startswith('"long"[250]: true where a number is expected')
    # without all_failures only the first is reported
    assert len(verify(path, against=files["ckpt"]).failures) == 1


def test_ragged_array_without_meta(files):
    state = dict(files["state"])
    text = reference_text(state, no_meta=True)
    start, end = value_span(text, "big", 7 * 40 + 10)
    path = write(files, "ragged.json", text[:start] + text[end + 1:])
    message = only_failure(verify(path))
    assert message.startswith('"big"[7, 39]: ') and "39 elements" in message


def test_not_an_object_and_missing_params(files):
    assert "not an object" in only_failure(verify(write(files, "a.json", b"[1,2]")))
    assert only_failure(verify(write(files, "b.json", b'{"meta":{}}'))) == \
        'the document has no "params"'
    assert "truncated" in only_failure(verify(write(files, "c.json", b"")))


# ---- the float checks ---------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float8_e4m3fn", "float8_e5m2"])
def test_round_to_format_on_every_value_and_midpoint(dtype):
    """Every finite value of the dtype rounds to itself; values just inside a midpoint go to the
    near side; the midpoint itself goes to the even neighbour."""
    torch_dtype = getattr(torch, dtype)
    bits = torch.arange(0, 1 << (8 * torch.finfo(torch_dtype).bits // 8), dtype=torch.int32)
    view = torch.int16 if torch.finfo(torch_dtype).bits == 16 else torch.uint8
    values = bits.to(view).view(torch_dtype).to(torch.float64).numpy()
    values = np.unique(values[np.isfinite(values) & (values >= 0)])
    rounded, midpoint = round_to_format(values, dtype)
    assert np.array_equal(rounded, values) and not midpoint.any()
    low, high = values[:-1], values[1:]
    middle = (low + high) / 2
    down, _ = round_to_format(np.nextafter(middle, 0), dtype)
    up, _ = round_to_format(np.nextafter(middle, np.inf), dtype)
    assert np.array_equal(down, low) and np.array_equal(up, high)
    on, mid = round_to_format(middle, dtype)
    assert mid.all()
    even = np.where(np.arange(len(low)) % 2 == 0, low, high)      # consecutive values alternate
    assert np.array_equal(on, even)
    negative, _ = round_to_format(-values, dtype)
    assert np.array_equal(negative, -values)


def test_round_to_float32_matches_the_hardware():
    rng = np.random.default_rng(1234)
    values = rng.standard_normal(20000) * np.exp(rng.uniform(-100, 100, 20000))
    rounded, _ = round_to_format(values, "float32")
    with np.errstate(over="ignore"):
        hardware = values.astype(np.float32).astype(np.float64)
    assert np.isinf(hardware).any() and (hardware == 0).any()   # both ends of the range
    assert np.array_equal(rounded, hardware)


def test_double_rounding_midpoints_are_decided_exactly(files):
    """1 + 2**-24 is the midpoint between float32 1.0 and 1 + 2**-23. A decimal a hair above it
    rounds (directly) to 1 + 2**-23, but through float64 it becomes the midpoint and then 1.0."""
    x = 1 + 2.0 ** -23
    state = {"a": torch.tensor([x, 1.0], dtype=torch.float32)}
    checkpoint = files["root"] / "mid.pt"
    torch.save(state, checkpoint)
    above = "1.000000059604644775390625000001"     # midpoint + 1e-30
    assert float(above) == 1 + 2.0 ** -24
    meta = b'{"meta":{"a":{"dtype":"torch.float32","shape":[2]}},"params":{"a":['
    good = write(files, "mid_good.json", meta + f"{above},1.0]}}}}".encode())
    report = verify(good, against=str(checkpoint), float_format="shortest")
    assert report.ok, report.failures
    bad = write(files, "mid_bad.json", meta + f"{above},{above}]}}}}".encode())
    message = only_failure(verify(bad, against=str(checkpoint), float_format="shortest"))
    assert message.startswith(f'"a"[1]: {above}, but the checkpoint has 1.0')


# ---- backend, report, CLI ------------------------------------------------------------------

def test_slow_backend_is_refused_unless_allowed(files, monkeypatch):
    import ijson
    real = ijson.get_backend

    def no_c(name):
        if name == "yajl2_c":
            raise ImportError("no yajl")
        return real(name)
    monkeypatch.setattr(ijson, "get_backend", no_c)
    with pytest.raises(StreamExportError, match="yajl2_c.*--allow-slow-backend"):
        verify(files["exact"])
    report = verify(files["exact"], against=files["ckpt"], allow_slow_backend=True)
    assert report.ok and report.backend != "yajl2_c"
    bad = edit(files, "fc.weight", 7, lambda tok: b"true")
    assert only_failure(verify(bad, allow_slow_backend=True)).startswith('"fc.weight"[1, 2]')


def test_push_parser_targets(files, monkeypatch):
    """yajl2_c appends events to a list target itself; ijson's pure-Python backend calls
    ``send``, so it gets the list's append, and verify gives the same verdicts with it."""
    import io

    import ijson
    assert V._takes_a_list(ijson.get_backend("yajl2_c"))
    python = ijson.get_backend("python")
    assert not V._takes_a_list(python)
    source = V._EventSource(python, io.BytesIO(b"[1.5,true]"))
    assert source.take(5) == [("start_array", None), ("number", 1.5), ("boolean", True),
                              ("end_array", None)]
    monkeypatch.setattr(V, "_load_backend", lambda allow_slow_backend: python)
    report = verify(files["exact"], against=files["ckpt"])
    assert report.ok and report.backend == "python"
    bad = edit(files, "big", 3 * 40 + 7, lambda tok: b"false")
    assert only_failure(verify(bad)).startswith('"big"[3, 7]: false where a number')


def test_summary_and_lines(files):
    report = verify(files["exact"], against=files["ckpt"])
    line = report.summary()
    assert "\n" not in line and line.startswith("verified ")
    assert f"{len(files['state'])} tensors" in line and "exact floats" in line
    assert report.lines() == [line]
    bad = verify(edit(files, "fc.weight", 7, lambda tok: b"true"))
    assert bad.lines() == bad.failures and bad.summary().startswith("FAILED (1 failure)")
    with pytest.raises(V.VerifyError):
        bad.raise_for_failures()


@pytest.mark.parametrize("state, words", [
    ({"i": torch.tensor([1, 2]), "b": torch.tensor([True])}, "; no floats"),
    ({"d": torch.tensor([0.5], dtype=torch.float64), "i": torch.tensor([3])},
     "; float format not distinguishable"),       # float64 is the same in both modes
])
def test_summary_says_what_it_could_tell_of_the_floats(files, state, words):
    path = write(files, "kinds.json", reference_text(state))
    for no_meta in (False, True):
        if no_meta:
            path = write(files, "kinds.json", reference_text(state, no_meta=True))
        report = verify(path)
        assert report.ok and report.summary().endswith(words), report.summary()


def test_cli_exit_codes(files, capsys):
    from streamexport.cli import main
    assert main(["verify", files["exact"], "--against", files["ckpt"]]) == 0
    bad = edit(files, "fc.weight", 7, lambda tok: b"true")
    capsys.readouterr()
    assert main(["verify", bad, "--all-failures"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and '"fc.weight"[1, 2]' in err[0]


def test_memory_is_bounded_by_a_group(files, monkeypatch):
    """Peak traced memory does not grow with the tensor: parsed values live a group at a time."""
    import tracemalloc
    monkeypatch.setattr(V, "GROUP_EVENTS", 2048)
    peaks = []
    for size in (20000, 120000):
        state = {"w": torch.randn(size)}
        checkpoint = files["root"] / f"mem{size}.pt"
        torch.save(state, checkpoint)
        path = write(files, f"mem{size}.json", reference_text(state))
        tracemalloc.start()
        try:
            report = verify(path, against=str(checkpoint), chunk_elements=4096)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert report.ok
    # 100000 more parsed floats would be > 3 MB as Python objects
    assert peaks[1] - peaks[0] < 300_000, peaks


def test_missing_output_file(files):
    with pytest.raises(StreamExportError, match="cannot read"):
        verify(str(files["root"] / "nope.json"))


def test_integer_out_of_range_without_checkpoint(files):
    path = edit(files, "u8", 2, lambda tok: b"300")
    message = only_failure(verify(path))
    assert message == '"u8"[2]: 300 is outside the range of torch.uint8'


def test_bool_and_float8_values_are_compared(files):
    path = edit(files, "mask", 3, lambda tok: b"false" if tok == b"true" else b"true")
    assert verify(path).ok                      # still a bool tensor
    assert only_failure(verify(path, against=files["ckpt"])).startswith('"mask"[1, 0]: ')
    path = edit(files, "f8", 2, lambda tok: b"416.0")  # an e4m3fn value, not the element
    assert verify(path).ok
    message = only_failure(verify(path, against=files["ckpt"]))
    assert message == '"f8"[2]: 416.0, but the checkpoint has 448.0'


def test_no_meta_output_against_a_checkpoint_with_more_keys(files):
    state = dict(files["state"])
    del state["u8"]
    text = reference_text(state, no_meta=True)
    path = write(files, "nometa_missing.json", text)
    assert verify(path).ok
    message = only_failure(verify(path, against=files["ckpt"]))
    assert message == '"u8": in the checkpoint but missing from the output'
    start, end = value_span(text, "emb", 4)
    path = write(files, "nometa_changed.json", text[:start] + b"0.5" + text[end:])
    assert only_failure(verify(path, against=files["ckpt"])).startswith('"emb"[1, 1]: 0.5, but')


def test_prefix_rules_match_the_export(files):
    state = {"module.fc.weight": torch.randn(3, 2), "module.fc.bias": torch.randn(2)}
    checkpoint = files["root"] / "dp.pt"
    torch.save(state, checkpoint)
    stripped = {name[len("module."):]: t for name, t in state.items()}
    path = write(files, "dp.json", reference_text(stripped))
    assert verify(path, against=str(checkpoint)).ok
    report = verify(path, against=str(checkpoint), keep_prefix=True, all_failures=True)
    assert report.failures == [
        '"fc.bias": in the output but not in the checkpoint',
        '"fc.weight": in the output but not in the checkpoint',
        '"module.fc.bias": in the checkpoint but missing from the output',
        '"module.fc.weight": in the checkpoint but missing from the output']
    kept = write(files, "dp_kept.json", reference_text(state))
    assert verify(kept, against=str(checkpoint), keep_prefix=True).ok
    assert verify(kept, against=str(checkpoint), strip_prefixes=["module.fc."]).failures


@pytest.mark.parametrize("group", [3, 7, 40, 1 << 12])
def test_shape_is_learned_without_meta(files, monkeypatch, group):
    """No meta and no checkpoint: the first arrays fix the shape; every later one must match."""
    monkeypatch.setattr(V, "GROUP_EVENTS", group)
    state = files["state"]
    text = reference_text(state, no_meta=True)
    report = verify(write(files, "learn.json", text))
    assert report.ok, report.failures
    assert report.elements == sum(t.numel() for t in state.values())

    def corrupt(key, flat, new, name):
        start, end = value_span(text, key, flat)
        return write(files, name, text[:start] + new + text[end:])
    cases = [
        (corrupt("big", 2 * 40 + 5, b"1.5,2.5", "extra.json"), '"big"[2, 40]: extra element'),
        (corrupt("tr", 7, b"true", "bool.json"), '"tr"[1, 3]: true where a number is expected'),
        (corrupt("ids", 6, b"1.5", "mixed.json"), '"ids"[1, 2]: the number 1.5 in a tensor of integers'),
        (corrupt("long", 0, b"2", "mixed0.json"), '"long"[1]: the number'),
        (corrupt("big", 45, b"[1.0]", "nested.json"), '"big"[1, 5]: an array where a number'),
    ]
    start, end = value_span(text, "big", 29 * 40 + 3)
    cases.append((write(files, "short.json", text[:start] + text[end + 1:]),
                  '"big"[29, 39]: missing element'))
    cases.append((write(files, "cut.json", text[:start]), '"big"[29, 3]: the file ends'))
    for path, expected in cases:
        message = only_failure(verify(path))
        assert message.startswith(expected), (expected, message)


def test_awkward_keys_stay_on_one_line(files):
    key = 'q"uote\\back\nnewline\u00e9'
    state = {key: torch.tensor([1.0, 2.0]), "plain": torch.tensor([3.0])}
    checkpoint = files["root"] / "keys.pt"
    torch.save(state, checkpoint)
    text = reference_text(state)
    assert verify(write(files, "keys.json", text), against=str(checkpoint)).ok
    bad = text.replace(b"[1.0,2.0]", b"[1.0,true]")
    message = only_failure(verify(write(files, "keys_bad.json", bad)))
    assert "\n" not in message
    assert message.startswith('"q\\"uote\\\\back\\nnewline\u00e9"[1]: true where a number')


def test_unreadable_checkpoint_is_an_error(files):
    from streamexport.errors import CheckpointError
    broken = write(files, "broken.pt", b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError):
        verify(files["exact"], against=broken)
    with pytest.raises(ValueError, match="float_format"):
        verify(files["exact"], float_format="fast")


# ---- the C loop over a group's events (streamexport._verify_events) ------------------------

def _events(text, use_float=True):
    import ijson
    return list(ijson.get_backend("yajl2_c").basic_parse(text, use_float=use_float))


@pytest.fixture
def take_values():
    from streamexport import _verify_events
    return _verify_events.take_values


@pytest.mark.parametrize("event_loop", ["c"], indirect=True)
@pytest.mark.parametrize("source", ["exact", "shortest"])
def test_good_outputs_never_reach_the_python_path(files, monkeypatch, source):
    """With the C loop, a good export's groups are all taken by it (no silent slow path)."""
    slow = []
    monkeypatch.setattr(V._Verifier, "check_values", lambda *args: slow.append(args[2]))
    assert verify(files[source], against=files["ckpt"]).ok
    assert verify(files[source]).ok
    assert not slow


@pytest.mark.parametrize("event_loop", ["c"], indirect=True)
def test_take_values_fills_the_elements_in_order(take_values):
    events = _events(b'[[1.5,-0.0],[2.5,1e300]]')
    out = np.full(4, 7.0)
    assert take_values(events, 0, b"[[vv][vv]]", "f", out) is True
    assert out.tolist() == [1.5, -0.0, 2.5, 1e300] and np.signbit(out[1])
    ints, bools = np.zeros(2, np.int64), np.zeros(3, np.bool_)
    assert take_values(_events(b'[-9223372036854775807,5]'), 0, b"[vv]", "i", ints)
    assert ints.tolist() == [1 - (1 << 63), 5]
    unsigned = np.zeros(2, np.uint64)
    assert take_values(_events(b'[18446744073709551615,5]', use_float=False), 0, b"[vv]", "u",
                       unsigned)
    assert unsigned.tolist() == [(1 << 64) - 1, 5]
    assert take_values(_events(b'[true,false,true]'), 0, b"[vvv]", "b", bools)
    assert bools.tolist() == [True, False, True]
    # a run in the middle of the list
    assert take_values(events, 1, b"[vv]", "f", out[:2]) and out[:2].tolist() == [1.5, -0.0]


@pytest.mark.parametrize("event_loop", ["c"], indirect=True)
@pytest.mark.parametrize("text, letters, kind", [
    (b'[1.5,2.5]', b"[v]", "f"),               # the array goes on
    (b'[1.5]', b"[vv]", "f"),                  # it ends early
    (b'[1.5,true]', b"[vv]", "f"),             # a bool where a number is expected
    (b'[1.5,2]', b"[vv]", "f"),                # an int token in a float tensor
    (b'[1,2.5]', b"[vv]", "i"),                # a float token in an int tensor
    (b'[1,2.5]', b"[vv]", "u"),                # the same in a uint64 tensor
    (b'[1,-2]', b"[vv]", "u"),                 # a negative integer in a uint64 tensor
    (b'[1,0]', b"[vv]", "b"),                  # numbers in a bool tensor
    (b'[[1.5]]', b"[v]", "f"),                 # an array where an element is expected
    (b'{"a":1.5}', b"[v]", "f"),               # an object
])
def test_take_values_says_no_to_anything_unusual(take_values, text, letters, kind):
    events = _events(text)
    out = np.zeros(letters.count(b"v"),
                   {"f": np.float64, "i": np.int64, "u": np.uint64, "b": np.bool_}[kind])
    assert take_values(events, 0, letters, kind, out) is False


@pytest.mark.parametrize("event_loop", ["c"], indirect=True)
def test_take_values_says_no_to_events_that_are_not_ijsons(take_values):
    out = np.zeros(1)
    assert take_values([("start_array", None), ["number", 1.0], ("end_array", None)], 0,
                       b"[v]", "f", out) is False
    assert take_values([("start_array", None), (1, 1.0), ("end_array", None)], 0,
                       b"[v]", "f", out) is False
    assert take_values([("start_array", None), ("number", 1.0, 2), ("end_array", None)], 0,
                       b"[v]", "f", out) is False
    beyond_int64 = [("start_array", None), ("number", 1 << 63), ("end_array", None)]
    assert take_values(beyond_int64, 0, b"[v]", "i", np.zeros(1, np.int64)) is False
    beyond_uint64 = [("start_array", None), ("number", 1 << 64), ("end_array", None)]
    assert take_values(beyond_uint64, 0, b"[v]", "u", np.zeros(1, np.uint64)) is False
    assert take_values(_events(b"[1.5]"), -1, b"[v]", "f", out) is False
    assert take_values(_events(b"[1.5]"), 1, b"[v]", "f", out) is False


@pytest.mark.parametrize("event_loop", ["c"], indirect=True)
def test_take_values_refuses_wrong_arguments(take_values):
    events = _events(b"[1.5,2.5]")
    with pytest.raises(ValueError, match="fewer values"):
        take_values(events, 0, b"[vv]", "f", np.zeros(1))
    with pytest.raises(ValueError, match="more values"):
        take_values(events, 0, b"[vv]", "f", np.zeros(3))
    with pytest.raises(ValueError, match="kind"):
        take_values(events, 0, b"[vv]", "x", np.zeros(2))
    with pytest.raises(ValueError, match="whole items"):
        take_values(events, 0, b"[vv]", "f", np.zeros(2, np.float32)[:1].view(np.uint8)[:3])
    with pytest.raises(ValueError, match="template byte"):
        take_values(events, 0, b"[vx]", "f", np.zeros(2))
    with pytest.raises(TypeError):
        take_values(events, 0, b"[vv]", "f", np.zeros(2).tobytes())     # read-only
    with pytest.raises(TypeError):
        take_values(tuple(events), 0, b"[vv]", "f", np.zeros(2))
