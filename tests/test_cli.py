"""The command line: exit codes, one-line errors naming the file, nothing left behind."""
import os
import pickle
import subprocess
import sys
import zipfile

import pytest
import torch

from reference import reference_bytes


def run(*args, cwd, stdin=None, env=None):
    return subprocess.run([sys.executable, "-m", "streamexport", *map(str, args)], cwd=cwd,
                          capture_output=True, timeout=120, stdin=stdin, env=env)


def assert_clean_failure(result, filename, cause, tmp_path, before):
    err = result.stderr.decode()
    assert result.returncode == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert str(filename) in lines[0], lines[0]
    assert cause.lower() in lines[0].lower(), lines[0]
    assert sorted(os.listdir(tmp_path)) == before, "an output or temporary file was left"


@pytest.fixture
def good_checkpoint(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "model.pt"
    torch.save(torch.nn.Linear(4, 3).state_dict(), path)
    return path


def test_without_the_c_core_errors_stay_one_line_and_the_slow_path_is_named_after(
        tmp_path, good_checkpoint):
    env = dict(os.environ, STREAMEXPORT_DISABLE_SPEEDUPS="1")
    env.pop("STREAMEXPORT_REQUIRE_SPEEDUPS", None)
    bad = tmp_path / "trunc.pt"
    bad.write_bytes(good_checkpoint.read_bytes()[:100])
    before = sorted(os.listdir(tmp_path))
    result = run("export", bad, tmp_path / "out.json", cwd=tmp_path, env=env)
    assert_clean_failure(result, bad, "corrupt or truncated", tmp_path, before)

    out = tmp_path / "model.json"
    result = run("export", good_checkpoint, out, cwd=tmp_path, env=env)
    lines = result.stderr.decode().splitlines()
    assert result.returncode == 0, lines
    assert "C core is not built" in lines[0] and "pure-Python" in lines[0]
    assert lines[-1].startswith("streamexport: wrote")
    assert out.read_bytes() == reference_bytes(good_checkpoint)


def test_export_writes_the_contract_and_says_so(tmp_path, good_checkpoint):
    out = tmp_path / "model.json"
    result = run("export", good_checkpoint, out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == reference_bytes(good_checkpoint)
    assert b"2 tensors" in result.stderr


def test_export_to_stdout(tmp_path, good_checkpoint):
    result = run("export", good_checkpoint, "-", "--quiet", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout == reference_bytes(good_checkpoint)
    assert result.stderr == b""


def test_python_dash_m_and_console_script_agree(tmp_path, good_checkpoint):
    script = os.path.join(os.path.dirname(sys.executable), "streamexport")
    if not os.path.exists(script):
        pytest.skip("the console script is not installed in this environment")
    a = subprocess.run([script, "export", str(good_checkpoint), "-", "-q"], capture_output=True)
    assert a.returncode == 0 and a.stdout == reference_bytes(good_checkpoint)


def test_usage_error_exits_2(tmp_path):
    result = run("export", cwd=tmp_path)
    assert result.returncode == 2


def malicious_pickle(tmp_path, marker):
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    path = tmp_path / "evil.pt"
    torch.save({"w": torch.ones(1), "payload": Evil()}, path)
    return path


@pytest.mark.parametrize("case", ["truncated", "random", "empty", "missing", "directory",
                                  "not_a_dict", "collision", "nonfinite", "evil"])
def test_bad_input_gives_one_line_and_no_output(tmp_path, good_checkpoint, case):
    target = tmp_path / "out.json"
    marker = tmp_path / "pwned"
    if case == "truncated":
        src = tmp_path / "trunc.pt"
        src.write_bytes(good_checkpoint.read_bytes()[:300])
    elif case == "random":
        src = tmp_path / "random.pt"
        src.write_bytes(os.urandom(4096))
    elif case == "empty":
        src = tmp_path / "empty.pt"
        src.write_bytes(b"")
    elif case == "missing":
        src = tmp_path / "nope.pt"
    elif case == "directory":
        src = tmp_path / "adir"
        src.mkdir()
    elif case == "not_a_dict":
        src = tmp_path / "list.pt"
        torch.save([torch.ones(2)], src)
    elif case == "collision":
        src = tmp_path / "collide.pt"
        torch.save({"module.w": torch.ones(1), "w": torch.ones(1)}, src)
    elif case == "nonfinite":
        src = tmp_path / "nan.pt"
        torch.save({"w": torch.tensor([1.0, float("nan")])}, src)
    elif case == "evil":
        src = malicious_pickle(tmp_path, marker)
    good_checkpoint.unlink()
    before = sorted(os.listdir(tmp_path))
    result = run("export", src, target, cwd=tmp_path)
    cause = {"truncated": "", "random": "", "empty": "", "missing": "", "directory": "",
             "not_a_dict": "", "collision": "module.w", "nonfinite": "non-finite",
             "evil": ""}[case]
    assert_clean_failure(result, src.name, cause, tmp_path, before)
    assert not marker.exists(), "the pickle's code ran"


def test_missing_output_directory(tmp_path, good_checkpoint):
    before = sorted(os.listdir(tmp_path))
    target = tmp_path / "no" / "such" / "dir" / "out.json"
    result = run("export", good_checkpoint, target, cwd=tmp_path)
    assert_clean_failure(result, target, "does not exist", tmp_path, before)


def test_failed_export_leaves_existing_target_untouched(tmp_path, good_checkpoint):
    target = tmp_path / "out.json"
    target.write_bytes(b"precious")
    bad = tmp_path / "nan.pt"
    torch.save({"a": torch.ones(3), "b": torch.tensor([float("inf")])}, bad)
    result = run("export", bad, target, cwd=tmp_path)
    assert result.returncode == 1
    assert target.read_bytes() == b"precious"
    assert sorted(os.listdir(tmp_path)) == sorted(["out.json", "nan.pt", "model.pt"])


def test_debug_shows_the_traceback(tmp_path):
    src = tmp_path / "random.pt"
    src.write_bytes(b"not a checkpoint at all")
    result = run("export", src, tmp_path / "o.json", "--debug", cwd=tmp_path)
    assert result.returncode == 1
    assert b"Traceback" in result.stderr


def test_export_with_verify_and_verify_command(tmp_path, good_checkpoint):
    out = tmp_path / "model.json"
    result = run("export", good_checkpoint, out, "--verify", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert b"verified" in result.stderr
    result = run("verify", out, "--against", good_checkpoint, cwd=tmp_path)
    assert result.returncode == 0 and b"verified" in result.stderr


def test_verify_command_reports_a_changed_value(tmp_path, good_checkpoint):
    out = tmp_path / "model.json"
    assert run("export", good_checkpoint, out, "-q", cwd=tmp_path).returncode == 0
    text = out.read_bytes()
    position = text.index(b'"weight":[[') + len(b'"weight":[[')
    digit = text.index(b"5", position) if b"5" in text[position:] else text.index(b"1", position)
    out.write_bytes(text[:digit] + (b"6" if text[digit:digit + 1] == b"5" else b"2") + text[digit + 1:])
    result = run("verify", out, "--against", good_checkpoint, cwd=tmp_path)
    assert result.returncode == 1
    line = result.stderr.decode().strip().splitlines()[0]
    assert "weight" in line and "Traceback" not in result.stderr.decode()


@pytest.mark.parametrize("flags,fsyncs", [((), 1), (("--no-fsync",), 0)])
def test_export_fsyncs_the_output_unless_told_not_to(tmp_path, good_checkpoint, monkeypatch,
                                                     flags, fsyncs):
    from streamexport import cli, writer
    calls = []
    real_fsync = writer.os.fsync
    monkeypatch.setattr(writer.os, "fsync", lambda fd: (calls.append(fd), real_fsync(fd)))
    out = tmp_path / "model.json"
    assert cli.main(["export", str(good_checkpoint), str(out), "--quiet", *flags]) == 0
    assert len(calls) == fsyncs
    assert out.read_bytes() == reference_bytes(good_checkpoint)
