"""`streamexport script`: the standalone export script (standard library + torch only).

The scripts are run the way a user without streamexport would run them: in a child Python
started with -I (isolated: no PYTHONPATH, no user site, no current directory on sys.path),
from a temporary directory, with an import blocker in front of sys.meta_path that makes
`import streamexport`, `import orjson` and `import numpy` fail -- the blocker is needed because
CI installs streamexport into the same site-packages as torch, and the test proves inside the
child that those imports fail. To keep the suite fast, one child loads every generated
script once and runs all the jobs (each job calls the script's own `main` or export function
with stdout/stderr captured); two more children run a script as `__main__` for real.
"""
import ast
import base64
import json
import os
import pickle
import stat
import subprocess
import sys

import pytest
import torch

from reference import payload_json, reference_bytes
from streamexport import script as script_module
from streamexport.errors import StreamExportError
from streamexport.script import ScriptOptionError, render

RUNNER = r'''
import base64, importlib.abc, importlib.util, io, json, os, runpy, signal, sys, warnings

BLOCKED = ("streamexport", "orjson", "numpy")
WITHOUT_BLOCKER = {name: importlib.util.find_spec(name) is not None for name in BLOCKED}


class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError("blocked for this test: " + name, name=name)
        return None


sys.meta_path.insert(0, Blocker())
# torch says once that it runs without numpy; that is the point, not noise for the jobs.
warnings.filterwarnings("ignore", message=".*NumPy.*")


def probe():
    failed = {}
    for name in BLOCKED:
        try:
            __import__(name)
            failed[name] = False
        except ImportError:
            failed[name] = True
    return {"import_fails": failed, "importable_without_blocker": WITHOUT_BLOCKER,
            "isolated": sys.flags.isolated, "cwd_on_path": "" in sys.path or os.getcwd() in sys.path}


class SignalAfter:
    """Stands in for the script's json module; sends a signal to this process on a call."""

    def __init__(self, real, signum, after):
        self.real, self.signum, self.after, self.calls = real, signum, after, 0

    def __getattr__(self, name):
        return getattr(self.real, name)

    def dumps(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.after:
            os.kill(os.getpid(), self.signum)
        return self.real.dumps(*args, **kwargs)


def run_job(scope, job):
    err, out_bytes = io.StringIO(), io.BytesIO()
    out = io.TextIOWrapper(out_bytes, encoding="utf-8")
    saved = sys.stdout, sys.stderr, sys.argv
    sys.stdout, sys.stderr, sys.argv = out, err, [job["script"]] + job["args"]
    real_json = scope["json"]
    if job.get("signal"):
        scope["json"] = SignalAfter(real_json, getattr(signal, job["signal"]), job["after"])
    result = {"status": None, "value": None, "exception": None}
    try:
        if job["kind"] == "main":
            result["status"] = scope["main"](job["args"])
        else:
            result["value"] = scope[job["function"]](*job["args"], **job.get("kwargs", {}))
    except Exception as exc:
        result["exception"] = "%s: %s" % (type(exc).__name__, exc)
    finally:
        scope["json"] = real_json
        out.flush()
        sys.stdout, sys.stderr, sys.argv = saved
    result["stderr"] = err.getvalue()
    result["stdout"] = base64.b64encode(out_bytes.getvalue()).decode("ascii")
    return result


mode = sys.argv[1]
if mode == "main":
    script = sys.argv[2]
    sys.argv = sys.argv[2:]
    runpy.run_path(script, run_name="__main__")
elif mode == "batch":
    with open(sys.argv[2]) as f:
        jobs = json.load(f)
    scopes, results = {}, {"probe": probe(), "jobs": {}}
    for job in jobs:
        if job["script"] not in scopes:
            # the functions' globals: the module namespace the script really runs in
            scopes[job["script"]] = runpy.run_path(job["script"], run_name="standalone")["main"].__globals__
        results["jobs"][job["id"]] = run_job(scopes[job["script"]], job)
    results["modules_loaded"] = sorted(m for m in BLOCKED if m in sys.modules)
    with open(sys.argv[3], "w") as f:
        json.dump(results, f)
'''

SCRIPTS = {
    "default": {},
    "keep": {"keep_prefix": True},
    "nometa": {"no_meta": True},
    "custom": {"function_name": "to_torchlean", "keep_prefix": True, "no_meta": True},
    "unsafe": {"weights_only": "False"},
}

OLD = b"an older export that must survive\n"


def run_child(args, cwd):
    return subprocess.run([sys.executable, "-I", "-c", RUNNER, *map(str, args)], cwd=cwd,
                          capture_output=True, timeout=600)


# ---- checkpoints -------------------------------------------------------------------------

def _mlp_state_dict():
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
    return model.state_dict()


def _dtype_tensors():
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 7
    tied = torch.randn(4, 2, dtype=torch.float64)
    tensors = {
        "f64": torch.tensor([1.0, -0.0, 1e-05, 1e16, 5e-324, 1.7976931348623157e308, 0.1],
                            dtype=torch.float64),
        "f32": torch.tensor([[0.1, -2.5e-8], [3.4e38, 1e-45]], dtype=torch.float32),
        "f16": torch.randn(3, 5).to(torch.float16),
        "bf16": torch.randn(2, 3, 4).to(torch.bfloat16),
        "i8": torch.tensor([-128, 0, 127], dtype=torch.int8),
        "i16": torch.tensor([-32768, 32767], dtype=torch.int16),
        "i32": torch.tensor([[-2**31, 2**31 - 1]], dtype=torch.int32),
        "i64": torch.tensor([-2**63, 2**62, 0], dtype=torch.int64),
        "u8": torch.tensor([0, 255], dtype=torch.uint8),
        "bool": torch.tensor([[True, False], [False, True]]),
        "scalar.f": torch.tensor(2.5),
        "scalar.i": torch.tensor(7),
        "scalar.b": torch.tensor(False),
        "empty.2x0": torch.zeros(2, 0),
        "empty.0x3": torch.zeros(0, 3, dtype=torch.int32),
        "empty.0": torch.zeros(0),
        "base": base,
        "transposed": base.t(),
        "sliced": base[1:, ::2],
        "expanded": torch.tensor([1.5, -1.5]).expand(3, 2),
        "tied.a": tied,
        "tied.b": tied,
    }
    for name in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz"):
        if hasattr(torch, name):
            tensors[name] = torch.tensor([0.5, -1.0, 3.0]).to(getattr(torch, name))
    if hasattr(torch, "float8_e8m0fnu"):
        tensors["float8_e8m0fnu"] = torch.tensor([0.5, 1.0, 2.0 ** 100]).to(torch.float8_e8m0fnu)
    if hasattr(torch, "uint64"):
        tensors["u16"] = torch.tensor([0, 65535], dtype=torch.int32).to(torch.uint16)
        tensors["u32"] = torch.tensor([0, 2**32 - 1], dtype=torch.int64).to(torch.uint32)
        tensors["u64"] = torch.tensor([0, 2**63, 2**64 - 1], dtype=torch.uint64)
    return tensors


def _awkward_keys():
    names = ['quote"d', "back\\slash", "ctl\x00\x01\x1f\n\t\x7f", "ünïcødé", "😀", "\uff21",
             "Z", "a", " space", "line\u2028sep", "module.", "module.module.inner"]
    return {name: torch.tensor([float(i), -float(i)]) for i, name in enumerate(names)}


def _large_tensors():
    torch.manual_seed(2)
    rows = torch.randn(300, 250)
    return {
        "rows": rows,                                                  # blocks of whole rows
        "rows.t": rows.t(),                                            # the same, transposed
        "deep": torch.randint(-999, 999, (2, 3, 30000), dtype=torch.int32),  # a row too large
        "flat": torch.randn(140000).to(torch.bfloat16),                # a long 1-d tensor
    }


class _RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _make_checkpoints(root):
    made = {}

    def save(name, obj, **kwargs):
        path = root / f"{name}.pt"
        torch.save(obj, path, **kwargs)
        made[name] = path

    mlp = _mlp_state_dict()
    save("mlp", mlp)
    dp = {f"module.{k}": v for k, v in mlp.items()}
    dp["module.module.inner"] = torch.tensor([1.0])
    save("dataparallel", dp)
    inner = dict(mlp, step=3, names=["x", "y"], lr=0.5)
    save("wrapped", {"state_dict": inner, "epoch": 7, "optimizer": {"lr": 0.1}})
    bn = torch.nn.BatchNorm1d(3)
    opt = torch.optim.SGD(bn.parameters(), lr=0.1, momentum=0.9)
    save("model_state_dict", {"model_state_dict": bn.state_dict(),
                              "optimizer_state_dict": opt.state_dict()})
    save("wrapper_not_dict", {"state_dict": torch.ones(2), "w": torch.zeros(1)})
    save("dtypes", _dtype_tensors())
    save("keys", _awkward_keys())
    save("large", _large_tensors())
    save("empty", {})
    save("legacy", mlp, _use_new_zipfile_serialization=False)
    # refused ones
    save("collision", {"module.fc.weight": torch.ones(2), "fc.weight": torch.zeros(2)})
    bad = torch.zeros(3, 30000)
    bad[2, 5] = float("nan")
    bad[2, 29999] = float("-inf")
    save("nonfinite", {"a.ok": torch.ones(3), "b.bad": bad})
    save("complex", {"a": torch.ones(2), "c": torch.ones(2, dtype=torch.complex64)})
    save("notdict", [torch.ones(2)])
    save("evil", {"w": torch.ones(2), "x": _RunsACommand(root / "MARKER")})
    (root / "emptyfile.pt").write_bytes(b"")
    made["emptyfile"] = root / "emptyfile.pt"
    return made


# ---- the one child that runs every job ------------------------------------------------------

GOOD = ("mlp", "dataparallel", "wrapped", "model_state_dict", "wrapper_not_dict", "dtypes",
        "keys", "large", "empty", "legacy")
RUNS = ([("default", name) for name in GOOD]
        + [(opts, name) for opts in ("keep", "nometa") for name in GOOD if name != "large"]
        + [("custom", name) for name in ("dataparallel", "keys", "dtypes")]
        + [("unsafe", "mlp")])
ERRORS = {  # job -> (checkpoint, words the one line must hold)
    "collision": ("collision", ['"module.fc.weight"', '"fc.weight"', "module."]),
    "nonfinite": ("nonfinite", ['"b.bad"', "2 non-finite values", "nan", "index [2, 5]",
                                "flat index 60005"]),
    "complex": ("complex", ['"c"', "complex"]),
    "notdict": ("notdict", ["list", "not a dict"]),
    "evil": ("evil", ["weights_only", "posix.system"]),
    "emptyfile": ("emptyfile", ["empty"]),
    "missing": (None, ["no such file"]),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("script")
    checkpoints = _make_checkpoints(root)
    scripts = {}
    for label, options in SCRIPTS.items():
        path = root / f"{label}_{options.get('function_name', 'export_state_dict_json')}.py"
        path.write_text(render(**options), encoding="utf-8")
        scripts[label] = path
    jobs, expected_files = [], {}

    def job(job_id, label, args, **extra):
        jobs.append(dict(id=job_id, script=str(scripts[label]), args=[str(a) for a in args],
                         kind="main", **extra))

    for label, name in RUNS:
        out = root / "out" / f"{label}.{name}.json"
        out.parent.mkdir(exist_ok=True)
        job(f"{label}/{name}", label, [checkpoints[name], out])
        expected_files[f"{label}/{name}"] = out
    for job_id, (name, _) in ERRORS.items():
        folder = root / "err" / job_id
        folder.mkdir(parents=True)
        (folder / "model.json").write_bytes(OLD)
        source = checkpoints[name] if name else root / "absent.pt"
        job(f"error/{job_id}", "default", [source, folder / "model.json"])
    for signame, after in (("SIGTERM", 5), ("SIGINT", 9)):
        folder = root / "sig" / signame
        folder.mkdir(parents=True)
        (folder / "model.json").write_bytes(OLD)
        job(f"signal/{signame}", "default", [checkpoints["large"], folder / "model.json"],
            signal=signame, after=after)
    job("stdout", "default", [checkpoints["dataparallel"], "-"])
    job("usage", "default", [checkpoints["mlp"]])
    job("nodir", "default", [checkpoints["mlp"], root / "nodir" / "sub" / "model.json"])
    keep_mode = root / "mode" / "model.json"
    keep_mode.parent.mkdir()
    keep_mode.write_bytes(OLD)
    os.chmod(keep_mode, 0o640)
    job("mode", "default", [checkpoints["mlp"], keep_mode])
    jobs.append(dict(id="call", script=str(scripts["custom"]), kind="call",
                     function="to_torchlean",
                     args=[str(checkpoints["wrapped"]), str(root / "out" / "call.json")],
                     kwargs={"keep_prefix": False, "no_meta": False}))
    spec, results_path = root / "jobs.json", root / "results.json"
    spec.write_text(json.dumps(jobs))
    work = root / "cwd"
    work.mkdir()
    child = run_child(["batch", spec, results_path], cwd=work)
    assert child.returncode == 0, child.stderr.decode()
    results = json.loads(results_path.read_text())
    return dict(root=root, checkpoints=checkpoints, scripts=scripts, results=results,
                files=expected_files, child_stderr=child.stderr.decode())


# ---- the script runs where streamexport cannot be imported -----------------------------------

def test_the_child_python_cannot_import_streamexport_orjson_or_numpy(world):
    probe = world["results"]["probe"]
    assert probe["import_fails"] == {"streamexport": True, "orjson": True, "numpy": True}
    assert probe["isolated"] == 1 and not probe["cwd_on_path"]
    assert world["results"]["modules_loaded"] == []
    assert world["child_stderr"] == ""


def test_generated_scripts_import_only_the_standard_library_and_torch():
    if not hasattr(sys, "stdlib_module_names"):
        pytest.skip("sys.stdlib_module_names needs Python 3.10")
    allowed = set(sys.stdlib_module_names) | {"torch"}
    for options in SCRIPTS.values():
        tree = ast.parse(render(**options))
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                imported.add((node.module or "").split(".")[0])
        assert "torch" in imported and "json" in imported
        assert imported <= allowed, imported - allowed


# ---- byte-identical output -------------------------------------------------------------------

@pytest.mark.parametrize("label,name", RUNS, ids=[f"{a}-{b}" for a, b in RUNS])
def test_output_is_byte_identical_to_the_reference(world, label, name):
    result = world["results"]["jobs"][f"{label}/{name}"]
    assert result["status"] == 0, result
    options = SCRIPTS[label]
    expected = reference_bytes(world["checkpoints"][name], keep_prefix=options.get("keep_prefix", False),
                               no_meta=options.get("no_meta", False))
    assert world["files"][f"{label}/{name}"].read_bytes() == expected


def test_a_small_document_is_pinned_byte_for_byte(tmp_path):
    tensors = {"w": torch.tensor([[1.0, -0.0], [1e-05, 1e16]], dtype=torch.float64)}
    assert payload_json(tensors) == (b'{"meta":{"w":{"dtype":"torch.float64","shape":[2,2]}},'
                                     b'"params":{"w":[[1.0,-0.0],[1e-05,1e+16]]}}')


def test_output_matches_streamexport_export(world, tmp_path):
    export = pytest.importorskip("streamexport.export").export
    for label, name in RUNS:
        options = SCRIPTS[label]
        if name == "legacy":
            continue  # the script's promise is for zip checkpoints
        out = tmp_path / f"{label}.{name}.json"
        export(str(world["checkpoints"][name]), str(out), threads=1,
               keep_prefix=options.get("keep_prefix", False), no_meta=options.get("no_meta", False))
        assert world["files"][f"{label}/{name}"].read_bytes() == out.read_bytes(), (label, name)


def test_non_tensor_entries_are_skipped_and_counted(world):
    result = world["results"]["jobs"]["default/wrapped"]
    lines = result["stderr"].splitlines()
    assert len(lines) == 1
    assert "skipped 3 non-tensor entries" in lines[0]
    for name in ("step", "names", "lr"):
        assert f'"{name}"' in lines[0]
    assert world["results"]["jobs"]["default/mlp"]["stderr"] == ""


def test_a_legacy_checkpoint_loads_whole_with_a_warning(world):
    stderr = world["results"]["jobs"]["default/legacy"]["stderr"]
    assert "cannot be memory-mapped" in stderr and len(stderr.splitlines()) == 1


def test_weights_only_false_warns_every_run(world):
    stderr = world["results"]["jobs"]["unsafe/mlp"]["stderr"]
    assert "weights_only=False" in stderr and "trust" in stderr


def test_stdout_output(world):
    result = world["results"]["jobs"]["stdout"]
    assert result["status"] == 0
    assert base64.b64decode(result["stdout"]) == reference_bytes(world["checkpoints"]["dataparallel"])


def test_the_export_function_takes_keyword_overrides(world):
    result = world["results"]["jobs"]["call"]
    assert result["exception"] is None, result
    assert result["value"] == {"tensors": 4, "skipped": ["step", "names", "lr"]}
    out = world["root"] / "out" / "call.json"
    assert out.read_bytes() == reference_bytes(world["checkpoints"]["wrapped"])


def test_replacing_a_file_keeps_its_mode_and_new_files_follow_the_umask(world):
    assert world["results"]["jobs"]["mode"]["status"] == 0
    kept = world["root"] / "mode" / "model.json"
    assert stat.S_IMODE(os.stat(kept).st_mode) == 0o640
    assert kept.read_bytes() == reference_bytes(world["checkpoints"]["mlp"])
    umask = os.umask(0)
    os.umask(umask)
    new = world["files"]["default/mlp"]
    assert stat.S_IMODE(os.stat(new).st_mode) == 0o666 & ~umask


# ---- refusals: one line, exit 1, nothing written ----------------------------------------------

def _assert_untouched(folder):
    assert os.listdir(folder) == ["model.json"], os.listdir(folder)
    assert (folder / "model.json").read_bytes() == OLD


@pytest.mark.parametrize("job_id", sorted(ERRORS))
def test_errors_are_one_line_exit_1_and_leave_the_target_untouched(world, job_id):
    result = world["results"]["jobs"][f"error/{job_id}"]
    assert result["status"] == 1, result
    lines = result["stderr"].splitlines()
    assert len(lines) == 1, result["stderr"]
    assert "Traceback" not in lines[0] and ": error: " in lines[0]
    for words in ERRORS[job_id][1]:
        assert words in lines[0], lines[0]
    _assert_untouched(world["root"] / "err" / job_id)


def test_an_output_directory_that_does_not_exist(world):
    result = world["results"]["jobs"]["nodir"]
    assert result["status"] == 1
    assert len(result["stderr"].splitlines()) == 1 and "does not exist" in result["stderr"]
    assert not (world["root"] / "nodir").exists()


def test_a_pickle_that_runs_a_command_is_refused_and_never_run(world):
    assert world["results"]["jobs"]["error/evil"]["status"] == 1
    assert not (world["root"] / "MARKER").exists()


@pytest.mark.parametrize("signame,status,word", [("SIGTERM", 143, "terminated"),
                                                 ("SIGINT", 130, "interrupted")])
def test_a_signal_mid_write_removes_the_temporary_file(world, signame, status, word):
    result = world["results"]["jobs"][f"signal/{signame}"]
    assert result["status"] == status, result
    assert word in result["stderr"] and len(result["stderr"].splitlines()) == 1
    _assert_untouched(world["root"] / "sig" / signame)


# ---- the script as a program ----------------------------------------------------------------

def test_running_the_script_as_main(world, tmp_path):
    def start(script, *args):
        return subprocess.Popen([sys.executable, "-I", "-c", RUNNER, "main", str(script),
                                 *map(str, args)], cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    ok = start(world["scripts"]["custom"], world["checkpoints"]["dataparallel"], tmp_path / "o.json")
    refused = start(world["scripts"]["default"], world["checkpoints"]["collision"], tmp_path / "c.json")
    ok_err = ok.communicate(timeout=600)[1]
    refused_err = refused.communicate(timeout=600)[1]
    assert ok.returncode == 0 and ok_err == b"", ok_err
    assert (tmp_path / "o.json").read_bytes() == reference_bytes(
        world["checkpoints"]["dataparallel"], keep_prefix=True, no_meta=True)
    assert refused.returncode == 1 and len(refused_err.splitlines()) == 1, refused_err
    assert refused_err.startswith(b"default_export_state_dict_json.py: error: ")
    assert sorted(os.listdir(tmp_path)) == ["o.json"]


def test_wrong_arguments_are_a_usage_error(world):
    result = world["results"]["jobs"]["usage"]
    assert result["status"] == 2
    assert result["stderr"].startswith("usage: python default_export_state_dict_json.py CHECKPOINT OUTPUT")


# ---- render: options, validation, injection ---------------------------------------------------

def _assigned(tree, name):
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} is not assigned")


@pytest.mark.parametrize("options", list(SCRIPTS.values()), ids=list(SCRIPTS))
def test_render_bakes_the_options_in_as_literals(options):
    text = render(**options)
    tree = ast.parse(text)
    name = options.get("function_name", "export_state_dict_json")
    defs = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert name in defs
    assert _assigned(tree, "KEEP_PREFIX") is options.get("keep_prefix", False)
    assert _assigned(tree, "NO_META") is options.get("no_meta", False)
    assert _assigned(tree, "WEIGHTS_ONLY") is (options.get("weights_only", "True") == "True")
    assert f"python {name}.py CHECKPOINT OUTPUT" in text
    assert render(**options) == text


def test_the_header_says_it_streams_and_names_the_fast_path():
    header = ast.get_docstring(ast.parse(render()))
    assert "STREAMED" in header and "largest tensor" in header and "mmap=True" in header
    assert "pip install streamexport" in header and "streamexport export" in header
    assert "runs any code" not in header
    assert "runs any code" in ast.get_docstring(ast.parse(render(weights_only="False")))


@pytest.mark.parametrize("name", ["to_torchlean", "Export2", "_x", "ünï", "match"])
def test_good_function_names(name):
    tree = ast.parse(render(function_name=name))
    assert name in [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]


@pytest.mark.parametrize("name", [
    "", "1x", "a-b", "a b", "x; import os", "x\nimport os", "x()", "class", "None",
    "json", "torch", "os", "main", "print", "open", "args", "tensors", "KEEP_PREFIX",
    "__name__", "__init__", "\ufb01le", None, 3,
])
def test_bad_function_names_are_refused(name):
    with pytest.raises(ScriptOptionError):
        render(function_name=name)


@pytest.mark.parametrize("expr,value", [("True", True), ("False", False), ("true", True),
                                        (" FALSE ", False), ("1", True), ("0", False),
                                        ("yes", True), ("no", False), (True, True), (False, False)])
def test_weights_only_accepts_its_small_set(expr, value):
    assert _assigned(ast.parse(render(weights_only=expr)), "WEIGHTS_ONLY") is value


@pytest.mark.parametrize("expr", ["__import__('os').system('id')", "True or __import__('os')",
                                  "None", "", "maybe", "True\nimport os", 1, None])
def test_weights_only_refuses_anything_else(expr):
    with pytest.raises(ScriptOptionError):
        render(weights_only=expr)


def test_flags_must_be_bools_and_errors_are_usage_errors():
    with pytest.raises(ScriptOptionError):
        render(keep_prefix="yes")
    with pytest.raises(ScriptOptionError):
        render(no_meta=1)
    assert issubclass(ScriptOptionError, StreamExportError)
    assert issubclass(ScriptOptionError, ValueError)
    assert script_module.validate_function_name("ok_name") == "ok_name"


# ---- the command line wiring (streamexport.cli) -----------------------------------------------

def test_cli_script_prints_or_writes_the_rendered_script(tmp_path, capsys):
    from streamexport.cli import main
    assert main(["script"]) == 0
    assert capsys.readouterr().out == render()
    target = tmp_path / "to_torchlean.py"
    assert main(["script", "-o", str(target), "--function-name", "to_torchlean", "--keep-prefix",
                 "--no-meta", "--weights-only", "False", "--quiet"]) == 0
    assert target.read_text(encoding="utf-8") == render(
        function_name="to_torchlean", keep_prefix=True, no_meta=True, weights_only="False")


@pytest.mark.parametrize("args", [["--function-name", "x; import os"],
                                  ["--weights-only", "__import__('os').system('id')"]])
def test_cli_script_refuses_bad_options_as_usage_errors(tmp_path, capsys, args):
    from streamexport.cli import main
    target = tmp_path / "s.py"
    with pytest.raises(SystemExit) as info:
        main(["script", "-o", str(target), *args])
    captured = capsys.readouterr()
    assert info.value.code == 2 and captured.out == ""
    last = captured.err.strip().splitlines()[-1]
    assert last.startswith("streamexport script: error: argument ") and args[0] in last, last
    assert not target.exists()
