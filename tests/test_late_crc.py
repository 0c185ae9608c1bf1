"""The CRC-32 check of the tensor data runs beside the export; a corrupt record is still
refused before the output is published, and nothing is left behind."""
import os
import struct
import subprocess
import sys
import threading
import zipfile

import pytest
import torch

import streamexport
from streamexport.errors import CheckpointError
from streamexport.sources import open_checkpoint


def save_layers(tmp_path, count=6, rows=300):
    g = torch.Generator().manual_seed(5)
    path = tmp_path / "model.pt"
    torch.save({f"layer{i}.weight": torch.randn(rows, 100, generator=g) for i in range(count)},
               path)
    return path


def data_records(path):
    """(record name, data offset, size) of every tensor storage, in file order."""
    records = []
    with zipfile.ZipFile(path) as archive, open(path, "rb") as f:
        for info in archive.infolist():
            if "/data/" in info.filename and info.file_size:
                f.seek(info.header_offset + 26)
                name_length, extra_length = struct.unpack("<HH", f.read(4))
                records.append((info.filename,
                                info.header_offset + 30 + name_length + extra_length,
                                info.file_size))
    return sorted(records, key=lambda record: record[1])


def corrupt(path, position, new_bytes):
    data = bytearray(path.read_bytes())
    data[position:position + len(new_bytes)] = new_bytes
    path.write_bytes(bytes(data))


@pytest.fixture
def late_flip(tmp_path):
    """A checkpoint whose last stored record has one flipped bit near its end."""
    path = save_layers(tmp_path)
    name, offset, size = data_records(path)[-1]
    corrupt(path, offset + size - 3, bytes([path.read_bytes()[offset + size - 3] ^ 0x01]))
    return path, name


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.suffix != ".pt")


@pytest.mark.parametrize("threads", [1, 2])
def test_a_late_crc_failure_publishes_nothing(tmp_path, late_flip, threads):
    path, record = late_flip
    target = tmp_path / "out.json"
    with pytest.raises(CheckpointError) as raised:
        streamexport.export(str(path), str(target), threads=threads, chunk_elements=1000)
    assert str(raised.value) == (f"{path}: corrupt zip archive: record {record} fails its "
                                 "CRC-32 check")
    assert leftovers(tmp_path) == []


def test_a_late_crc_failure_leaves_an_existing_target_untouched(tmp_path, late_flip):
    path, _ = late_flip
    target = tmp_path / "out.json"
    target.write_bytes(b"keep me")
    with pytest.raises(CheckpointError, match="CRC-32"):
        streamexport.export(str(path), str(target), threads=2)
    assert target.read_bytes() == b"keep me"
    assert leftovers(tmp_path) == ["out.json"]


def test_a_crc_failure_writes_no_byte_to_a_fifo(tmp_path, late_flip):
    path, _ = late_flip
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    try:
        with pytest.raises(CheckpointError, match="CRC-32"):
            streamexport.export(str(path), str(fifo), threads=2)
    finally:
        # If the export failed before it opened the FIFO, the reader waits for a writer:
        # open and close a write end until it is gone. Never a blocking open: the reader may
        # finish meanwhile, and a blocking open with no reader left would wait forever.
        while reader.is_alive():
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:           # ENXIO: no reader has the FIFO open right now
                pass
            reader.join(timeout=0.05)
    assert received == [b""]


def test_a_bit_flip_that_makes_a_nan_is_reported_as_the_corruption_it_is(tmp_path):
    path = save_layers(tmp_path)
    name, offset, _ = data_records(path)[0]
    corrupt(path, offset + 4 * 7, struct.pack("<I", 0x7FC00000))   # element 7 becomes NaN
    with pytest.raises(CheckpointError) as raised:
        streamexport.export(str(path), str(tmp_path / "out.json"), threads=2)
    assert "CRC-32" in str(raised.value) and name in str(raised.value)
    assert leftovers(tmp_path) == []


def test_the_cli_reports_a_late_crc_failure_in_one_line(tmp_path, late_flip):
    path, record = late_flip
    target = tmp_path / "out.json"
    # cwd: away from the source tree, so that "-m streamexport" finds the installed package
    # (with its C core), as tests/test_cli.py runs it; --quiet: errors only
    run = subprocess.run([sys.executable, "-m", "streamexport", "export", str(path), str(target),
                          "--quiet"], capture_output=True, cwd=tmp_path, timeout=120)
    assert run.returncode == 1
    lines = run.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and record in lines[0] and "CRC-32" in lines[0], lines
    assert leftovers(tmp_path) == []


def test_deferred_check_reports_through_check_data(tmp_path, late_flip):
    path, record = late_flip
    with open_checkpoint(path, crc_threads=2) as checkpoint:   # opens before the data is read
        with pytest.raises(CheckpointError, match=record):
            checkpoint.check_data()
        assert record in str(checkpoint.data_error())
    with pytest.raises(CheckpointError, match=record):          # the default checks at once
        open_checkpoint(path)


def test_deferred_check_passes_a_sound_file_and_stops_on_close(tmp_path):
    path = save_layers(tmp_path)
    with open_checkpoint(path, crc_threads=1) as checkpoint:
        checkpoint.check_data()
        assert checkpoint.data_error() is None
    checkpoint = open_checkpoint(path, crc_threads=2)
    checkpoint.close()                # joins the threads, whatever they had reached
    checkpoint.check_data()


def test_a_record_claiming_more_bytes_than_the_file_holds_is_refused(tmp_path):
    from streamexport.zipcheck import DataCheck
    path = save_layers(tmp_path, count=1)
    name, offset, size = data_records(path)[0]
    check = DataCheck(str(path), [(name, offset, path.stat().st_size, 0)])
    with pytest.raises(CheckpointError, match="ends past the end of the file"):
        check.start().wait()


@pytest.mark.parametrize("threads", [1, 2, 5])
def test_several_corrupt_records_report_the_first_in_the_file_for_any_thread_count(
        tmp_path, threads):
    from streamexport.zipcheck import check_zip
    path = save_layers(tmp_path, count=8, rows=50)
    records = data_records(path)
    data = bytearray(path.read_bytes())
    for name, offset, size in records[2::2]:
        data[offset + size // 2] ^= 0x40
    path.write_bytes(bytes(data))
    check = check_zip(str(path), defer_data=True).start(threads)
    assert str(check.error()) == (f"{path}: corrupt zip archive: record {records[2][0]} fails "
                                  "its CRC-32 check")
    (tmp_path / "sound").mkdir()
    sound = save_layers(tmp_path / "sound", count=8, rows=50)
    assert check_zip(str(sound), defer_data=True).start(threads).error() is None


def test_an_output_error_is_reported_as_itself_without_waiting_for_the_check(tmp_path, late_flip,
                                                                            monkeypatch):
    from streamexport import writer
    from streamexport.errors import OutputError
    path, _ = late_flip

    def full_disk(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer.os, "write", full_disk)
    with pytest.raises(OutputError, match="no space left"):
        streamexport.export(str(path), str(tmp_path / "out.json"), threads=2)
    assert leftovers(tmp_path) == []


def test_a_data_check_never_started_runs_when_waited_for(tmp_path, late_flip):
    from streamexport.zipcheck import check_zip
    path, record = late_flip
    check = check_zip(str(path), defer_data=True)      # returned before anything is read
    with pytest.raises(CheckpointError, match=record):
        check.wait()


# ---- records the exporter checks itself, chunk by chunk --------------------------------

@pytest.fixture
def claims(monkeypatch):
    """Check threads held back until the check is waited for or closed, so the export
    claims every record a tensor has to itself (the path under test); returns the list of
    the names of the records claimed."""
    from streamexport.zipcheck import DataCheck
    claimed = []
    run, error, close, claim = DataCheck._run, DataCheck.error, DataCheck.close, DataCheck.claim

    def go(check):        # one event per check: set when it is waited for or closed
        return check.__dict__.setdefault("_test_go", threading.Event())

    def held_run(self):
        go(self).wait()
        run(self)

    def released(method):
        def call(self):
            go(self).set()
            return method(self)
        return call

    def spied_claim(self, offset, size):
        result = claim(self, offset, size)
        if result is not None:
            claimed.append(self._records[self._by_offset[offset]][0])
        return result

    monkeypatch.setattr(DataCheck, "_run", held_run)
    monkeypatch.setattr(DataCheck, "error", released(error))
    monkeypatch.setattr(DataCheck, "close", released(close))
    monkeypatch.setattr(DataCheck, "claim", spied_claim)
    return claimed


@pytest.mark.parametrize("threads", [1, 2])
def test_the_export_checks_the_records_it_claims(tmp_path, claims, threads):
    path = save_layers(tmp_path)
    records = data_records(path)
    target = tmp_path / "out.json"
    streamexport.export(str(path), str(target), threads=threads, chunk_elements=1000)
    assert sorted(claims) == sorted(name for name, _, _ in records)
    claims.clear()
    name, offset, size = records[2]
    corrupt(path, offset + size // 2, bytes([path.read_bytes()[offset + size // 2] ^ 0x10]))
    with pytest.raises(CheckpointError) as raised:
        streamexport.export(str(path), str(tmp_path / "again.json"), threads=threads,
                            chunk_elements=1000)
    assert str(raised.value) == f"{path}: corrupt zip archive: record {name} fails its CRC-32 check"
    assert name in claims
    assert leftovers(tmp_path) == ["out.json"]


def test_a_claim_not_fed_to_its_end_is_checked_when_waited_for(tmp_path):
    from streamexport.zipcheck import check_zip
    path = save_layers(tmp_path, count=3)
    name, offset, size = data_records(path)[1]
    for fed in (0, size // 2, size):
        check = check_zip(str(path), defer_data=True)
        claim = check.claim(offset, size)
        claim.feed(path.read_bytes()[offset:offset + fed])
        assert check.error() is None, fed
    corrupt(path, offset + size - 1, bytes([path.read_bytes()[offset + size - 1] ^ 0x01]))
    for fed in (0, size // 2, size):
        check = check_zip(str(path), defer_data=True)
        claim = check.claim(offset, size)
        claim.feed(path.read_bytes()[offset:offset + fed])
        assert str(check.error()) == (f"{path}: corrupt zip archive: record {name} fails its "
                                      "CRC-32 check"), fed


def test_a_record_is_claimed_once_whole_and_only_before_a_thread_takes_it(tmp_path):
    from streamexport.zipcheck import check_zip
    path = save_layers(tmp_path, count=3)
    records = data_records(path)
    _, offset, size = records[1]
    check = check_zip(str(path), defer_data=True)
    assert check.claim(offset, size - 4) is None            # not the whole record
    assert check.claim(offset + 4, size - 4) is None        # no record starts there
    assert check.claim(offset, size) is not None
    assert check.claim(offset, size) is None                # claimed already
    assert check.error() is None       # the unfed claim and the other records, checked here
    _, offset, size = records[0]
    assert check.claim(offset, size) is None                # a thread has taken it


def test_tensors_that_share_or_part_a_storage_leave_it_to_the_check_thread(tmp_path, claims):
    base = torch.arange(4000, dtype=torch.float32)
    path = tmp_path / "model.pt"
    # tied weights (one storage, two whole tensors) and a view of part of a storage, which
    # torch.save writes whole
    torch.save({"a": base, "b": base, "part": torch.arange(3000.0)[1000:2000]}, path)
    records = data_records(path)
    streamexport.export(str(path), str(tmp_path / "out.json"), threads=2)
    assert len(claims) == 1 and len(records) == 2           # "a" or "b", never "part"
    claims.clear()
    part = next(record for record in records if record[2] == 3000 * 4)
    name, offset, size = part
    corrupt(path, offset + 10, b"\xff")                       # outside the part exported
    with pytest.raises(CheckpointError, match=name):
        streamexport.export(str(path), str(tmp_path / "again.json"), threads=2)


def test_a_nan_bit_flip_in_a_claimed_record_is_reported_as_the_corruption_it_is(tmp_path,
                                                                              claims):
    path = save_layers(tmp_path)
    name, offset, _ = data_records(path)[0]
    corrupt(path, offset + 4 * 7, struct.pack("<I", 0x7FC00000))   # element 7 becomes NaN
    with pytest.raises(CheckpointError) as raised:
        streamexport.export(str(path), str(tmp_path / "out.json"), threads=2)
    assert str(raised.value) == f"{path}: corrupt zip archive: record {name} fails its CRC-32 check"
    assert name in claims          # stopped before its bytes were fed: checked when waited for
    assert leftovers(tmp_path) == []
