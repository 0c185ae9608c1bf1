"""verify in parts, one process each: the structure scan, the cut, and the same report as one
process gives, for sound files and for every kind of broken one."""
import json
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

import streamexport
from streamexport import _verify_parallel as parallel
from streamexport.verify import verify

scan_structure = pytest.importorskip("streamexport._verify_events").scan_structure


def reference_scan(text, max_depth):
    """scan_structure's contract, byte by byte."""
    marks, depth, in_string, escaped = [], 0, False, False
    for offset, c in enumerate(text):
        c = chr(c)
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "{[":
            if depth <= max_depth:
                marks.append((offset, c))
            depth += 1
        elif c in "}]":
            if depth == 0:
                return False, marks
            depth -= 1
            if depth <= max_depth:
                marks.append((offset, c))
        elif c in ",:" and depth <= max_depth:
            marks.append((offset, c))
    return not in_string and depth == 0, marks


def scanned(text, max_depth, pieces=1):
    """scan_structure over ``text`` given in ``pieces`` parts: (whole, marks)."""
    state, found = (0, False, False), []
    cuts = np.linspace(0, len(text), pieces + 1).astype(int)
    for begin, end in zip(cuts, cuts[1:]):
        state, broken, offsets, marks = scan_structure(text[begin:end], max_depth, int(begin),
                                                       state)
        found += zip(np.frombuffer(offsets, np.int64).tolist(), marks.decode())
        if broken:
            return False, found
    return state == (0, False, False), found


def random_document(rng, depth=0):
    kind = rng.random()
    if depth > 4 or kind < 0.3:
        return rng.choice([1.5, -2, True, None, "a", 'q"u\\o[t]e{}:,', "\\", "", 1e-05])
    if kind < 0.6:
        return [random_document(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(["k", "a],\"b", "\\\\", "x:y", "{"]) + str(i): random_document(rng, depth + 1)
            for i in range(rng.randrange(4))}


def test_the_scan_follows_its_contract_on_random_documents_and_their_cuts():
    rng = random.Random(3)
    for _ in range(400):
        text = json.dumps(random_document(rng), separators=(",", rng.choice([":", ": "])))
        data = text.encode()
        for max_depth in (0, 1, 2, 5):
            assert scanned(data, max_depth) == reference_scan(data, max_depth), text
        # in pieces, resumed from the state each piece ends in (inside strings too)
        pieces = rng.randrange(2, 9)
        assert scanned(data, 2, pieces) == reference_scan(data, 2), (text, pieces)
        cut = data[:rng.randrange(len(data) + 1)]
        assert scanned(cut, 2) == reference_scan(cut, 2), cut
    for broken in (b"]", b"{}]", b'{"a', b'"\\', b"[[", b'{"a":"}"'):
        assert scanned(broken, 2) == reference_scan(broken, 2)
        assert scanned(broken, 2)[0] is False


def test_a_file_is_scanned_a_piece_at_a_time(tmp_path, monkeypatch):
    text = json.dumps({"meta": {}, "params": {f"k{i}": [[1.5] * 7] * 3 for i in range(300)}},
                      separators=(",", ":")).encode()
    path = tmp_path / "doc.json"
    path.write_bytes(text)
    whole = parallel._layout(str(path), scan_structure)
    monkeypatch.setattr(parallel, "_PIECE", 97)     # pieces that cut strings and numbers
    assert parallel._layout(str(path), scan_structure) == whole
    assert len(whole[1]) == 300


def test_the_scan_is_long_enough_for_its_buffers_to_grow():
    data = b"[" + b",".join([b"[1.5]"] * 100_000) + b"]"
    complete, marks = scanned(data, 1)
    assert complete and len(marks) == 2 * 100_000 + 99_999 + 2


def _tricky_state():
    g = torch.Generator().manual_seed(0)
    names = ['a],"b', 'x"y', "ünïcode", "back\\slash", "plain", "z:0", "0d", "empty"]
    state = {name: torch.randn(200, 30, generator=g) for name in names[:6]}
    state["0d"] = torch.tensor(2.5)
    state["empty"] = torch.zeros(3, 0)
    state["bf16"] = torch.randn(64, 64, generator=g).to(torch.bfloat16)
    state["ints"] = torch.arange(1000)
    return state


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(_tricky_state(), path)
    return path


def test_the_cut_gives_every_member_whole_and_the_parts_cover_the_file(tmp_path, checkpoint):
    out = tmp_path / "out.json"
    streamexport.export(checkpoint, out, fsync=False)
    data = out.read_bytes()
    prefix_end, members, suffix_start = parallel._layout(str(out), scan_structure)
    assert data[:prefix_end].endswith(b'"params":{') and data[suffix_start:] == b"}}"
    keys = [next(iter(json.loads(b"{" + data[a:b] + b"}"))) for a, b in members]
    assert keys == sorted(_tricky_state())
    for jobs in (2, 3, 5, 50):
        runs = parallel._runs(members, jobs)
        assert 2 <= len(runs) <= min(jobs, len(members))
        assert runs[0][0] == members[0][0] and runs[-1][1] == members[-1][1]
        joined = b",".join(data[a:b] for a, b in runs)
        assert data[:prefix_end] + joined + data[suffix_start:] == data


@pytest.mark.parametrize("text", [
    b'{"meta":{},"params":{}}',                         # nothing to cut
    b'{"params":{"a":[1]}}',                            # one member
    b'{"params":{"a":[1],"b":[2]},"extra":1}',          # not an export's layout
    b'{"meta":{}, "params":{"a":[1],"b":[2]}, "meta":{}}',
    b'[{"params":{"a":[1],"b":[2]}}]',
    b'{"params":{"a":[1],"b":[2]}',                     # unclosed
    b'{"params":["a",1,"b",2]}',
])
def test_anything_but_an_exports_layout_with_two_tensors_is_not_cut(tmp_path, text):
    path = tmp_path / "odd.json"
    path.write_bytes(text)
    layout = parallel._layout(str(path), scan_structure)
    assert layout is None or len(parallel._runs(layout[1], 2)) < 2


@pytest.fixture
def in_parts(monkeypatch):
    """Cut every file, however small; record what the parts gave."""
    monkeypatch.setattr(parallel, "MIN_PART_BYTES", 1)
    merged = []
    merge = parallel._merge

    def spy(*args):
        report = merge(*args)
        merged.append(report)
        return report
    monkeypatch.setattr(parallel, "_merge", spy)
    return merged


def _fields(report):
    return (report.failures, report.tensors, report.elements, report.bytes, report.float_format,
            report.float_format_detected, report.floats, report.backend)


@pytest.mark.parametrize("float_format, no_meta", [("exact", False), ("shortest", False),
                                                    ("exact", True)])
def test_a_sound_export_gets_the_one_process_report_from_its_parts(
        tmp_path, checkpoint, in_parts, float_format, no_meta):
    out = tmp_path / "out.json"
    streamexport.export(checkpoint, out, float_format=float_format, no_meta=no_meta,
                        fsync=False)
    one = verify(out, against=checkpoint)
    many = verify(out, against=checkpoint, jobs=3, progress="log")
    assert in_parts and in_parts[-1] is not None, "the parts did not decide"
    assert _fields(many) == _fields(one) and many.ok
    assert many.float_format == float_format


def test_an_indented_export_is_cut_as_well(tmp_path, checkpoint, in_parts):
    out = tmp_path / "out.json"
    streamexport.export(checkpoint, out, fsync=False)
    out.write_text(json.dumps(json.loads(out.read_bytes()), indent=1))
    one = verify(out, against=checkpoint)
    many = verify(out, against=checkpoint, jobs=2)
    assert in_parts[-1] is not None and one.ok
    assert _fields(many) == _fields(one)


def _broken(data, how):
    text = data.decode()
    if how == "value":      # a value changed in the last tensor
        at = text.rindex('"z:0":[[') + 8
        return (text[:at] + "7" + text[at + 1:]).encode()
    if how == "missing":    # a whole tensor gone from params
        start = text.index('"plain":')
        end = text.index('"x\\"y":')
        return (text[:start] + text[end:]).encode()
    if how == "duplicate":  # the first tensor again as the last
        first = text.index('"0d":')
        return (text[:-2] + "," + text[first:text.index(",", first)] + "}}").encode()
    if how == "unknown":
        return (text[:-2] + ',"stranger":[1.0]}}').encode()
    raise AssertionError(how)


def test_parts_that_see_the_float_format_and_parts_that_cannot_agree(
        tmp_path, checkpoint, in_parts):
    # exact tokens are also shortest-mode text (they round back): a part of exact tensors
    # alone cannot tell, and takes the format the others found, as one process does
    out = tmp_path / "mixed.json"
    out.write_bytes(_mixed(tmp_path, checkpoint))
    one = verify(out, against=checkpoint)
    many = verify(out, against=checkpoint, jobs=2)
    assert in_parts[-1] is not None and one.ok and one.float_format == "shortest"
    assert _fields(many) == _fields(one)


def _mixed(tmp_path, checkpoint):
    """The first half of the tensors in shortest text, the rest exact."""
    texts = {}
    for fmt in ("exact", "shortest"):
        out = tmp_path / f"{fmt}.json"
        streamexport.export(checkpoint, out, float_format=fmt, fsync=False)
        data = out.read_bytes()
        prefix_end, members, suffix_start = parallel._layout(str(out), scan_structure)
        texts[fmt] = (data[:prefix_end], [data[a:b] for a, b in members], data[suffix_start:])
    prefix, shortest, suffix = texts["shortest"]
    half = len(shortest) // 2
    return prefix + b",".join(shortest[:half] + texts["exact"][1][half:]) + suffix


@pytest.mark.parametrize("how", ["value", "missing", "duplicate", "unknown"])
@pytest.mark.parametrize("all_failures", [False, True])
def test_a_broken_export_gets_exactly_the_one_process_failures(
        tmp_path, checkpoint, in_parts, how, all_failures):
    out = tmp_path / "out.json"
    streamexport.export(checkpoint, out, fsync=False)
    out.write_bytes(_broken(out.read_bytes(), how))
    one = verify(out, against=checkpoint, all_failures=all_failures)
    many = verify(out, against=checkpoint, all_failures=all_failures, jobs=2)
    assert not one.ok
    assert _fields(many) == _fields(one)
    assert all(report is None for report in in_parts)    # the parts never decide a failure


def test_the_command_line_verifies_in_parts(tmp_path, checkpoint):
    out = tmp_path / "out.json"
    code = ("import sys; from streamexport import _verify_parallel as p; "
            "p.MIN_PART_BYTES = 1; merge = p._merge; "
            "p._merge = lambda *a: print('merged', merge(*a) is not None) or merge(*a); "
            "from streamexport.cli import main; sys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", code, "export", str(checkpoint), str(out),
                           "--no-fsync", "--verify", "--jobs", "2"], cwd=tmp_path,
                          capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    assert "merged True" in done.stdout.decode()
    assert done.stderr.decode().splitlines()[-1].startswith("streamexport: verified")


def test_a_file_that_cannot_be_cut_is_read_by_one_process(tmp_path, in_parts):
    path = tmp_path / "one.pt"
    torch.save({"only": torch.randn(50, 50)}, path)
    out = tmp_path / "one.json"
    streamexport.export(path, out, fsync=False)
    many = verify(out, against=path, jobs=2)        # the workers start, then are let go
    assert in_parts == [] and many.ok and _fields(many) == _fields(verify(out, against=path))


def test_an_error_in_a_part_is_raised_as_one_process_raises_it(tmp_path, checkpoint, in_parts):
    out = tmp_path / "out.json"
    streamexport.export(checkpoint, out, fsync=False)
    missing = tmp_path / "gone.pt"
    with pytest.raises(streamexport.StreamExportError) as one:
        verify(out, against=missing)
    with pytest.raises(type(one.value)) as many:
        verify(out, against=missing, jobs=2)
    assert str(many.value) == str(one.value)
