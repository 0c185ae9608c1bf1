"""Output faults: size limit, full disk, signals, closed pipes. Nothing half-written survives."""
import errno
import os
import resource
import signal
import subprocess
import sys

import pytest
import torch

import streamexport
from streamexport.errors import OutputError
from streamexport import writer


@pytest.fixture(scope="module")
def big_checkpoint(tmp_path_factory):
    """Large enough that exporting it with one thread takes a few seconds."""
    path = tmp_path_factory.mktemp("big") / "big.pt"
    g = torch.Generator().manual_seed(0)
    torch.save({f"layer{i}.weight": torch.randn(1000, 1000, generator=g) for i in range(8)}, path)
    return path


def start(args, cwd, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "streamexport", *map(str, args)], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def only(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir())


def test_file_size_limit_mid_write(tmp_path, big_checkpoint):
    target = tmp_path / "out.json"

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    proc = start(["export", big_checkpoint, target, "--threads", "1"], tmp_path, preexec_fn=limit)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err
    assert b"file-size limit" in err and b"Traceback" not in err
    assert only(tmp_path) == []


def test_full_disk_via_injected_enospc(tmp_path, monkeypatch):
    src = tmp_path / "m.pt"
    torch.save({"w": torch.randn(100, 100)}, src)
    target = tmp_path / "out.json"
    target.write_bytes(b"keep me")
    real_write = os.write
    calls = {"n": 0}

    def failing_write(fd, data):
        calls["n"] += 1
        if calls["n"] > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(writer.os, "write", failing_write)
    with pytest.raises(OutputError, match="no space left"):
        streamexport.export(str(src), str(target), threads=1, chunk_elements=100)
    assert target.read_bytes() == b"keep me"
    assert only(tmp_path) == ["m.pt", "out.json"]


def test_full_device_dev_full(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    src = tmp_path / "m.pt"
    torch.save({"w": torch.randn(10, 10)}, src)
    proc = start(["export", src, "/dev/full"], tmp_path)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and b"no space left" in err and b"Traceback" not in err


def test_unwritable_output_directory(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    src = tmp_path / "m.pt"
    torch.save({"w": torch.ones(2)}, src)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(OutputError, match="permission denied"):
        streamexport.export(str(src), str(locked / "o.json"))


def test_readonly_directory_via_injected_eacces(tmp_path, monkeypatch):
    src = tmp_path / "m.pt"
    torch.save({"w": torch.ones(2)}, src)

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(writer.tempfile, "mkstemp", refuse)
    with pytest.raises(OutputError, match="permission denied"):
        streamexport.export(str(src), str(tmp_path / "o.json"))
    assert only(tmp_path) == ["m.pt"]


# The signal arrives from inside the first write, so it always lands mid-export, however
# fast the machine: the CLI's own handlers must clean up.
SIGNAL_MID_WRITE = """
import os, signal, sys
from streamexport import cli, writer
real_write = writer.AtomicOutput.write
def write_then_signal(self, data):
    real_write(self, data)
    if self.bytes_written > 1000:
        os.kill(os.getpid(), signal.{name})
writer.AtomicOutput.write = write_then_signal
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["SIGINT", "SIGTERM"])
def test_signal_mid_export_removes_the_partial_file(tmp_path, big_checkpoint, signum, code):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "out.json"
    target.write_bytes(b"previous export")
    script = SIGNAL_MID_WRITE.replace("{name}", signal.Signals(signum).name)
    proc = subprocess.run([sys.executable, "-c", script, "export", str(big_checkpoint),
                           str(target), "--threads", "2"], cwd=tmp_path, capture_output=True,
                          timeout=300)
    assert proc.returncode == code, proc.stderr
    assert b"Traceback" not in proc.stderr
    assert only(out_dir) == ["out.json"]
    assert target.read_bytes() == b"previous export"


def test_closed_pipe_is_quiet(tmp_path, big_checkpoint):
    proc = subprocess.Popen(
        f"{sys.executable} -m streamexport export {big_checkpoint} - | head -c 100 > /dev/null; "
        "echo ${PIPESTATUS[0]} >&2", shell=True, executable="/bin/bash", cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=120)
    lines = err.decode().strip().splitlines()
    assert lines == ["1"], err


def test_temp_file_is_created_exclusively_beside_the_target(tmp_path, monkeypatch):
    src = tmp_path / "m.pt"
    torch.save({"w": torch.ones(2)}, src)
    seen = []
    real_mkstemp = writer.tempfile.mkstemp

    def spy(*args, **kwargs):
        fd, name = real_mkstemp(*args, **kwargs)
        seen.append((kwargs.get("dir"), name))
        return fd, name

    monkeypatch.setattr(writer.tempfile, "mkstemp", spy)
    target = tmp_path / "sub" / "o.json"
    target.parent.mkdir()
    streamexport.export(str(src), str(target))
    # mkstemp opens with O_CREAT | O_EXCL: a symlink planted at the name is never followed.
    assert len(seen) == 1 and seen[0][0] == str(target.parent)
    assert os.path.dirname(seen[0][1]) == str(target.parent)
    assert only(target.parent) == ["o.json"]


def _record_writeback(monkeypatch, step):
    calls = []
    monkeypatch.setattr(writer, "WRITEBACK_STEP", step)
    monkeypatch.setattr(writer, "_sync_file_range",
                        lambda fd, offset, nbytes, flags: calls.append((offset, nbytes, flags)))
    return calls


def test_fsync_starts_writeback_behind_the_writes(tmp_path, monkeypatch):
    """With fsync, ranges already written are sent to the disk as the export goes on:
    contiguous from offset 0, each at least a step long, never past what was written."""
    calls = _record_writeback(monkeypatch, 4096)
    target = tmp_path / "out.json"
    pieces = [bytes([65 + n % 26]) * (1000 + 37 * n) for n in range(60)]
    with writer.AtomicOutput(str(target), fsync=True) as out:
        for piece in pieces:
            out.write(piece)
    assert target.read_bytes() == b"".join(pieces)
    assert calls, "no writeback was started"
    position = 0
    for offset, nbytes, flags in calls:
        assert offset == position and nbytes >= 4096 and flags == 2
        position += nbytes
    assert position <= len(b"".join(pieces))


@pytest.mark.parametrize("fsync,target", [(False, "file"), (True, os.devnull)])
def test_no_writeback_without_fsync_or_in_place(tmp_path, monkeypatch, fsync, target):
    calls = _record_writeback(monkeypatch, 4096)
    path = str(tmp_path / "out.json") if target == "file" else target
    with writer.AtomicOutput(path, fsync=fsync) as out:
        for _ in range(20):
            out.write(b"x" * 3000)
    assert calls == []


@pytest.mark.skipif(writer._sync_file_range is None, reason="no sync_file_range here")
def test_real_writeback_keeps_the_export_byte_identical(tmp_path, monkeypatch, big_checkpoint):
    monkeypatch.setattr(writer, "WRITEBACK_STEP", 1 << 16)
    synced, unsynced = tmp_path / "synced.json", tmp_path / "unsynced.json"
    streamexport.export(big_checkpoint, str(synced), fsync=True)
    streamexport.export(big_checkpoint, str(unsynced), fsync=False)
    assert synced.read_bytes() == unsynced.read_bytes()
