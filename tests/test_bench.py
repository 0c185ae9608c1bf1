"""The bench: a tiny smoke run in a child process, plus the pieces its honesty rests on
(sizes, synthetic shapes, the output checks catching a wrong value). No timed assertions."""
import json
import os
import statistics
import subprocess
import sys

import numpy as np
import pytest
import torch

import streamexport
from streamexport import _bench_check, bench

# The bench child imports the streamexport this test imported (the installed one on CI,
# with its C core), not whatever a checkout beside the tests holds.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(streamexport.__file__)))


def _run_bench(args, tmp_path, timeout=600):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "streamexport.bench", *args], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=timeout)


def test_list_names_every_contender(tmp_path):
    done = _run_bench(["--list"], tmp_path)
    assert done.returncode == 0, done.stderr
    for name in bench.CONTENDER_NAMES:
        assert name in done.stdout


def test_unknown_contender_is_a_usage_error(tmp_path):
    done = _run_bench(["--only", "nosuch"], tmp_path)
    assert done.returncode == 2
    assert "nosuch" in done.stderr


def test_tiny_run_checks_every_contender_and_reports_figures(tmp_path):
    out = tmp_path / "bench.json"
    work = tmp_path / "work"
    work.mkdir()
    done = _run_bench(["--size", "64KB", "--adapter-size", "64KB", "--dtype", "float32",
                       "--threads", "1,2", "--repeat", "2", "--adapter-repeat", "2",
                       "--formatter-elements", "4096",
                       "--export-section-size", "64KB", "--workdir", str(work),
                       "--json", str(out), "--quiet"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(work.iterdir()) == []          # the temporary directory is gone
    for label in ("streamexport exact", "streamexport shortest", "TorchLean adapter",
                  "mmap + orjson, float64", "streamexport.verify", "bare ijson loop",
                  "Targets"):
        assert label in done.stdout
    report = json.loads(out.read_text())
    for key in ("machine", "versions", "date", "datasets", "results", "formatter", "targets"):
        assert key in report
    assert report["machine"]["cpus"] >= 1
    assert {"python", "torch", "numpy", "orjson", "ijson"} <= set(report["versions"])

    (dataset,) = report["datasets"]
    assert dataset["dtype"] == "float32" and dataset["elements"] > 0
    rows = {r["contender"]: r for r in report["results"]}
    assert set(rows) == {"export-exact@1", "export-exact@2", "export-shortest@1",
                         "export-shortest@2", "torchlean", "orjson-f64", "orjson-native",
                         "verify", "ijson", "export-fsync@2"}
    for name, row in rows.items():
        assert "error" not in row, (name, row.get("error"))
        assert row["check"]["status"] == "ok", (name, row["check"])
        seconds = row["seconds"]
        assert 0 < seconds["min"] <= seconds["median"] <= seconds["max"], name
        assert len(row["times"]) == 2
        assert row["elements"] == dataset["elements"]
        assert row["elements_per_s"] > 0 and row["peak_rss"] > 0
    # multi-threaded export wrote the same bytes; shortest is never longer than exact
    assert rows["export-exact@2"]["output_bytes"] == rows["export-exact@1"]["output_bytes"]
    assert rows["export-fsync@2"]["check"]["detail"].startswith("byte-identical")
    assert rows["export-shortest@1"]["output_bytes"] < rows["export-exact@1"]["output_bytes"]
    assert rows["torchlean"]["output_bytes"] > rows["export-exact@1"]["output_bytes"]  # indent=2
    # peak RSS is each child's own: the bare ijson loop never imports torch
    assert rows["ijson"]["peak_rss"] < rows["export-exact@1"]["peak_rss"] / 2
    # ratios against each contender
    assert set(rows["torchlean"]["ratios"]) == {"export-exact@1", "export-exact@2"}
    assert set(rows["orjson-native"]["ratios"]) == {"export-shortest@1", "export-shortest@2"}
    assert "verify" in rows["ijson"]["ratios"]

    section = report["formatter"]
    cases = {r["case"]: r for r in section["rows"]}
    assert set(cases) >= {"float32 exact", "float32 shortest", "bfloat16 exact", "float64"}
    for case in cases.values():
        assert case["check"] == "ok" and case["ratio"] > 0 and case["elements"] == 4096
        assert case["new_memory_ratio"] > 0 and case["new_memory_seconds"]["median"] > 0
    if report["versions"]["formatter"] == "c" and _speedups_has("simd", "simd_avx2"):
        # the rows of CPUs without AVX-512, when this one can run them
        assert {"float32 exact, AVX2 path", "float32 exact, scalar path"} <= set(cases)
    threads = section["export_threads"]
    assert "error" not in threads, threads
    assert threads["check"].startswith("ok") and threads["ratio"] > 0
    assert threads["start_up_seconds"]["median"] > 0
    if report["versions"]["formatter"] == "c":      # the bench child's, not this process's
        assert threads["formatting_only_ratio"] > 0
    else:
        assert threads["formatting_only_ratio"] is None
    names = {t["name"] for t in report["targets"]}
    assert {"adapter", "orjson", "float32 exact", "export threads"} <= names
    assert all(isinstance(t["met"], bool) for t in report["targets"])


def _speedups_has(*paths):
    try:
        from streamexport import _speedups
    except ImportError:
        return False
    return all(getattr(_speedups, path)() for path in paths)


def test_rounds_pool_the_timed_runs_of_every_contender(tmp_path):
    out = tmp_path / "bench.json"
    done = _run_bench(["--size", "64KB", "--dtype", "float32", "--threads", "2",
                       "--only", "export-exact,orjson-f64,ijson", "--rounds", "3", "--repeat", "2",
                       "--reader-repeat", "1", "--json", str(out), "--quiet"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "median of 3 rounds x 2 runs" in done.stdout
    rows = {r["contender"]: r for r in json.loads(out.read_text())["results"]}
    assert set(rows) == {"export-exact@2", "orjson-f64", "ijson"}
    for name, row in rows.items():
        assert "error" not in row, (name, row.get("error"))
        assert row["rounds"] == 3
        assert len(row["times"]) == (3 if name == "ijson" else 6)
        assert row["seconds"]["median"] == statistics.median(row["times"])
        assert "_again" not in row


def test_rounds_must_be_positive(tmp_path):
    done = _run_bench(["--rounds", "0"], tmp_path)
    assert done.returncode != 0 and "--rounds" in done.stderr


@pytest.mark.parametrize("text, expected", [
    ("2GB", 2 * 2 ** 30), ("0.5GB", 2 ** 29), ("64MB", 64 * 2 ** 20), ("100", 100), ("8kb", 8192)])
def test_parse_size(text, expected):
    assert bench.parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "2XB", "GB", "-1MB"])
def test_parse_size_refuses(text):
    with pytest.raises(Exception):
        bench.parse_size(text)


@pytest.mark.parametrize("elements", [1 << 14, 1 << 20, 50 << 20])
def test_llm_shapes_are_llm_like_and_near_the_size(elements):
    shapes = dict(bench.llm_shapes(elements))
    total = sum(int(np.prod(s)) for s in shapes.values())
    assert 0.6 * elements <= total <= 1.05 * elements
    vocab, hidden = shapes["model.embed_tokens.weight"]
    assert shapes["model.layers.0.self_attn.q_proj.weight"] == (hidden, hidden)
    assert shapes["model.layers.0.mlp.down_proj.weight"][0] == hidden
    assert shapes["model.norm.weight"] == (hidden,)
    assert "model.layers.1.mlp.up_proj.weight" in shapes      # at least two blocks


def test_llm_shapes_with_one_big_tensor():
    elements, big = 1 << 22, 1 << 21
    shapes = dict(bench.llm_shapes(elements, big))
    largest = max(int(np.prod(s)) for s in shapes.values())
    assert int(np.prod(shapes["model.embed_tokens.weight"])) == largest >= big


def test_synthetic_checkpoint_is_seeded(tmp_path):
    a = bench.make_checkpoint(str(tmp_path / "a.pt"), 1 << 16, "bfloat16", seed=3)
    b = bench.make_checkpoint(str(tmp_path / "b.pt"), 1 << 16, "bfloat16", seed=3)
    assert a["elements"] == b["elements"] and a["dtype"] == "bfloat16"
    sa, sb = torch.load(a["path"]), torch.load(b["path"])
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_round_bits_bfloat16_matches_torch():
    values = np.random.default_rng(7).normal(0, 0.02, 100_000).astype(np.float32)
    mine = _bench_check.round_bits(values.astype(np.float64), "bfloat16")
    theirs = torch.from_numpy(values).to(torch.bfloat16).view(torch.int16).numpy()
    assert np.array_equal(mine, theirs)


@pytest.fixture
def small_export(tmp_path):
    path = str(tmp_path / "m.pt")
    torch.save({"w": torch.tensor([[0.1, -2.5], [3e-7, 1.0]]), "b": torch.tensor([0.25, 0.5])},
               path)
    out = str(tmp_path / "m.json")
    streamexport.export(path, out, fsync=False)
    dataset = {"path": path, "largest_tensor": 4}
    return dataset, out


def test_check_output_accepts_exact_and_shortest_texts(small_export, tmp_path):
    dataset, out = small_export
    assert bench.check_output(out, dataset, "exact") == "exact values"
    short = str(tmp_path / "short.json")
    streamexport.export(dataset["path"], short, float_format="shortest", fsync=False)
    assert bench.check_output(short, dataset, "shortest") == "values at dtype"
    with pytest.raises(bench.CheckFailed):       # shortest text is not the exact values
        bench.check_output(short, dataset, "exact")


@pytest.mark.parametrize("old, new", [
    (b"0.10000000149011612", b"0.10000000149011615"),     # two float64 ulps off
    (b"[0.25,0.5]", b"[0.25,0.5,0.5]"),                   # an extra element
    (b'"b":', b'"c":'),                                   # a wrong name
])
def test_check_output_catches_a_wrong_document(small_export, tmp_path, old, new):
    dataset, out = small_export
    with open(out, "rb") as f:
        text = f.read()
    assert old in text
    bad = str(tmp_path / "bad.json")
    with open(bad, "wb") as f:
        f.write(text.replace(old, new, 1))
    with pytest.raises(bench.CheckFailed):
        bench.check_output(bad, dataset, "exact")


def test_a_real_checkpoint_path_with_wrappers_prefixes_and_scalars(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.BatchNorm1d(4))
    path = tmp_path / "model.pt"
    torch.save({"state_dict": {"module." + k: v for k, v in model.state_dict().items()},
                "epoch": 3}, path)
    out = tmp_path / "bench.json"
    done = _run_bench([str(path), "--repeat", "1", "--threads", "1",
                       "--only", "export-exact,orjson-f64,torchlean", "--json", str(out),
                       "--quiet"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    (dataset,) = report["datasets"]
    assert dataset["tensors"] == 7 and dataset["synthetic"] is False
    rows = {r["contender"]: r for r in report["results"]}
    assert set(rows) == {"export-exact@1", "orjson-f64", "torchlean"}
    for name, row in rows.items():      # the 0-d num_batches_tracked included
        assert row["check"]["status"] == "ok", (name, row["check"])
    assert "bytes = json.dumps(payload)" in rows["export-exact@1"]["check"]["detail"]
    assert path.exists()                 # a checkpoint given by the user is never removed


def test_check_output_streams_large_outputs_tensor_by_tensor(small_export, tmp_path, monkeypatch):
    dataset, out = small_export
    monkeypatch.setattr(_bench_check, "CHECK_IN_MEMORY_BYTES", 0)     # force the ijson path
    assert bench.check_output(out, dataset, "exact") == "exact values"
    with open(out, "rb") as f:
        text = f.read()
    bad = str(tmp_path / "bad.json")
    with open(bad, "wb") as f:
        f.write(text.replace(b"0.25", b"0.2500001", 1))
    with pytest.raises(bench.CheckFailed):
        bench.check_output(bad, dataset, "exact")
    monkeypatch.setattr(_bench_check, "CHECK_STREAM_MAX_TENSOR", 1)   # too big to parse here
    assert bench.check_output(out, dataset, "exact").startswith("skipped")
