"""Progress: a bar at a terminal, and plain lines every LOG_INTERVAL seconds in a CI log."""
import io
import os
import subprocess
import sys

import pytest
import torch

import streamexport
from streamexport import progress
from streamexport.progress import LogProgress
from streamexport.verify import verify


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_line_only_once_the_interval_has_passed_with_what_is_left():
    clock, out = Clock(), io.StringIO()
    shown = LogProgress(1000, interval=30, stream=out, clock=clock, what="verify: ",
                        unit="bytes")
    clock.now += 29
    shown.update(100)
    assert out.getvalue() == ""
    clock.now += 1
    shown.update(150)               # 250 of 1000 in 30 s: 90 s to go at that pace
    assert out.getvalue() == \
        "streamexport: verify: 25% (250 of 1,000 bytes) in 30 s, about 1 min 30 s left\n"
    clock.now += 10
    shown.update(250)               # the next line waits for the next interval
    assert out.getvalue().count("\n") == 1
    clock.now += 20
    shown.update(500)
    assert out.getvalue().splitlines()[-1] == \
        "streamexport: verify: 100% (1,000 of 1,000 bytes) in 1 min 00 s"


@pytest.mark.parametrize("seconds, text", [(0.4, "0 s"), (59, "59 s"), (61, "1 min 01 s"),
                                           (3599, "59 min 59 s"), (3600, "1 h 00 min"),
                                           (7 * 3600 + 5 * 60 + 29, "7 h 05 min")])
def test_durations_read_as_a_person_would_say_them(seconds, text):
    assert progress._duration(seconds) == text


def test_nothing_to_do_is_all_done():
    assert LogProgress(0, clock=Clock()).line(0) == "100% (0 of 0 elements) in 0 s"


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "model.pt"
    g = torch.Generator().manual_seed(0)
    torch.save({"a": torch.randn(300, 100, generator=g), "b": torch.randn(5000, generator=g),
                "c": torch.zeros(0)}, path)
    return path


def test_export_and_verify_log_their_progress_and_write_the_same_bytes(
        tmp_path, checkpoint, monkeypatch, capsys):
    plain = tmp_path / "plain.json"
    streamexport.export(checkpoint, plain, fsync=False)
    capsys.readouterr()
    monkeypatch.setattr(progress, "LOG_INTERVAL", 0.0)     # a line at every step
    out = tmp_path / "out.json"
    streamexport.export(checkpoint, out, fsync=False, progress="log", chunk_elements=4096)
    lines = capsys.readouterr().err.splitlines()
    assert out.read_bytes() == plain.read_bytes()
    assert len(lines) >= 35000 // 4096
    assert all(line.startswith("streamexport: ") and " of 35,000 elements) in " in line
               for line in lines), lines
    assert lines[-1].startswith("streamexport: 100% (35,000 of 35,000 elements) in ")

    assert verify(out, against=checkpoint, progress="log").ok
    lines = capsys.readouterr().err.splitlines()
    size = f"{out.stat().st_size:,}"
    assert lines and all(line.startswith("streamexport: verify: ") for line in lines), lines
    assert lines[-1].startswith(f"streamexport: verify: 100% ({size} of {size} bytes) in ")


def test_the_bar_writes_the_same_bytes(tmp_path, checkpoint, capsys):
    plain, barred = tmp_path / "plain.json", tmp_path / "bar.json"
    streamexport.export(checkpoint, plain, fsync=False)
    streamexport.export(checkpoint, barred, fsync=False, progress=True)
    assert barred.read_bytes() == plain.read_bytes()
    assert verify(barred, progress="bar").ok


def test_a_progress_that_does_not_exist_is_refused_before_any_output(tmp_path, checkpoint):
    with pytest.raises(ValueError, match="progress must be"):
        streamexport.export(checkpoint, tmp_path / "out.json", progress="loud")
    with pytest.raises(ValueError, match="progress must be"):
        verify(tmp_path / "missing.json", progress=1)
    assert os.listdir(tmp_path) == ["model.pt"]


def test_the_command_line_logs_when_stderr_is_not_a_terminal_and_quiet_silences_it(
        tmp_path, checkpoint):
    code = ("import sys; from streamexport import progress; progress.LOG_INTERVAL = 0.0; "
            "from streamexport.cli import main; sys.exit(main(sys.argv[1:]))")

    def run(*args):
        done = subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=tmp_path,
                              capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr.decode()
        return done.stderr.decode().splitlines()

    lines = run("export", checkpoint, tmp_path / "out.json", "--no-fsync", "--verify")
    assert any(line.startswith("streamexport: 100% (35,000 of 35,000 elements)")
               for line in lines), lines
    assert any(line.startswith("streamexport: verify: 100% (") for line in lines), lines
    assert lines[-1].startswith("streamexport: verified")
    assert run("export", checkpoint, tmp_path / "out.json", "--no-fsync", "--verify",
               "--quiet") == []
