"""Hostile and broken checkpoints: each is a CheckpointError with one line naming the file.

Nothing is executed, nothing but a CheckpointError escapes, and a file that still opens
gives exactly the tensors that were saved.
"""
import os
import random
import struct
import warnings
import zipfile

import pytest
import torch

from streamexport.errors import CheckpointError
from streamexport.sources import open_checkpoint


def state():
    torch.manual_seed(3)
    return {"fc.weight": torch.randn(8, 4), "fc.bias": torch.randn(8),
            "steps": torch.arange(5), "mask": torch.tensor([True, False])}


def refused(path, **options):
    """open_checkpoint must raise a one-line CheckpointError naming ``path``; returns it."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(CheckpointError) as info:
            open_checkpoint(path, **options)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message and "Traceback" not in message, message
    assert len(message) < 600, message
    return message


def opens_or_refuses(path, expected):
    """Either a clean CheckpointError or the exact saved tensors -- nothing else."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            checkpoint = open_checkpoint(path)
    except CheckpointError as exc:
        message = str(exc)
        assert message.startswith(f"{path}: ") and "\n" not in message, message
        return False
    with checkpoint:
        assert sorted(e.name for e in checkpoint.entries) == sorted(expected)
        for entry in checkpoint.entries:
            assert torch.equal(entry.tensor(), expected[entry.name])
    return True


@pytest.fixture
def good_zip(tmp_path):
    path = tmp_path / "good.pt"
    torch.save(state(), path)
    return path


def write(path, data):
    path.write_bytes(data)
    return path


# ---- not a checkpoint at all --------------------------------------------------------

def test_missing_file(tmp_path):
    assert "no such file" in refused(tmp_path / "absent.pt")


def test_empty_file(tmp_path):
    assert "empty" in refused(write(tmp_path / "empty.pt", b""))


def test_directory_that_is_not_a_checkpoint(tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    refused(folder)
    (folder / "notes.txt").write_text("hello")
    (folder / "weights.json").write_text("{}")
    refused(folder)


@pytest.mark.parametrize("seed", range(6))
def test_random_bytes(tmp_path, seed):
    rng = random.Random(seed)
    size = rng.choice([1, 7, 8, 9, 100, 4096, 100_000])
    data = bytes(rng.getrandbits(8) for _ in range(size))
    refused(write(tmp_path / f"random{seed}.pt", data))


TORCH_MAGIC_PICKLE = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."


@pytest.mark.parametrize("prefix", [b"PK\x03\x04", b"PK\x05\x06", TORCH_MAGIC_PICKLE, b"\x80\x02",
                                    b"\x10\x00\x00\x00\x00\x00\x00\x00{"])
def test_random_bytes_behind_a_plausible_magic(tmp_path, prefix):
    rng = random.Random(len(prefix))
    data = prefix + bytes(rng.getrandbits(8) for _ in range(2000))
    refused(write(tmp_path / "magic.pt", data))


def test_plain_text_file(tmp_path):
    refused(write(tmp_path / "readme.pt", b"this is not a checkpoint\n"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(good_zip):
    os.chmod(good_zip, 0)
    try:
        assert "permission" in refused(good_zip).lower()
    finally:
        os.chmod(good_zip, 0o644)


# ---- damaged torch zip files --------------------------------------------------------

def test_zip_truncated_at_several_points(tmp_path, good_zip):
    data = good_zip.read_bytes()
    cuts = sorted({4, 30, 64, len(data) // 4, len(data) // 2, len(data) - 200, len(data) - 22,
                   len(data) - 1})
    for cut in cuts:
        refused(write(tmp_path / f"cut{cut}.pt", data[:cut]))


def central_directory(data):
    """(offset, size) of the zip's central directory, from its end record."""
    end = data.rfind(b"PK\x05\x06")
    size, offset = struct.unpack_from("<II", data, end + 12)
    if offset == 0xFFFFFFFF:   # zip64
        locator = data.rfind(b"PK\x06\x07")
        end64 = struct.unpack_from("<Q", data, locator + 8)[0]
        size, offset = struct.unpack_from("<QQ", data, end64 + 40)
    return offset, size


def flipped(data, position, mask=0xFF):
    return data[:position] + bytes([data[position] ^ mask]) + data[position + 1:]


def test_bit_flips_in_the_central_directory_never_pass_silently(tmp_path, good_zip):
    data = good_zip.read_bytes()
    offset, size = central_directory(data)
    expected = state()
    path = tmp_path / "flip.pt"
    refusals = 0
    for position in range(offset, offset + size, 3):
        write(path, flipped(data, position))
        refusals += not opens_or_refuses(path, expected)
    assert refusals > 0


def test_bit_flips_in_central_directory_fields_that_matter(tmp_path, good_zip):
    data = good_zip.read_bytes()
    offset, _ = central_directory(data)
    # signature, CRC-32, compressed size, local header offset, first byte of the name
    for field in (0, 16, 20, 42, 46):
        refused(write(tmp_path / f"cd{field}.pt", flipped(data, offset + field, 0x01)))


def storage_records(path):
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if "/data/" in info.filename and info.file_size:
                with open(path, "rb") as f:
                    f.seek(info.header_offset + 26)
                    name_len, extra_len = struct.unpack("<HH", f.read(4))
                yield info, info.header_offset + 30 + name_len + extra_len


def test_bit_flips_in_tensor_data_are_caught_by_crc(tmp_path, good_zip):
    data = good_zip.read_bytes()
    for info, start in storage_records(good_zip):
        for position in (start, start + info.file_size // 2, start + info.file_size - 1):
            message = refused(write(tmp_path / "dataflip.pt", flipped(data, position, 0x10)))
            assert "CRC" in message and info.filename in message


def _central_entry(data, name):
    """The offset of ``name``'s entry in the central directory."""
    offset, _ = central_directory(data)
    at = data.index(b"/" + name.encode(), offset)
    return data.rindex(b"PK\x01\x02", offset, at)


@pytest.mark.parametrize("crc_threads", [0, 1])
@pytest.mark.parametrize("lie", ["signature", "name", "flags", "encrypted", "truncated"])
def test_a_tensor_record_whose_local_header_lies_is_refused(tmp_path, good_zip, lie,
                                                            crc_threads):
    # with the data check deferred (crc_threads, as the exporter has it), the local headers
    # of tensor records are walked without ZipFile.open: each thing open refuses (the path
    # without) must still be refused, naming the record
    data = good_zip.read_bytes()
    info = next(storage_records(good_zip))[0]
    head = info.header_offset
    if lie == "signature":
        data = flipped(data, head + 1)
    elif lie == "name":
        data = flipped(data, head + 30 + len(info.filename) - 1, 0x01)
    elif lie == "flags":          # compressed patched data, in the central directory
        entry = _central_entry(data, info.filename.split("/", 1)[1])
        data = data[:entry + 8] + struct.pack("<H", 0x20) + data[entry + 10:]
    elif lie == "encrypted":
        entry = _central_entry(data, info.filename.split("/", 1)[1])
        data = data[:entry + 8] + struct.pack("<H", 0x01) + data[entry + 10:]
    else:                         # the file ends inside the header: a central directory
        offset, _ = central_directory(data)   # pointing past the end, as a cut file's would
        entry = _central_entry(data, info.filename.split("/", 1)[1])
        data = data[:entry + 42] + struct.pack("<I", len(data) - 10) + data[entry + 46:]
    message = refused(write(tmp_path / f"{lie}.pt", data), crc_threads=crc_threads)
    assert "corrupt or truncated zip archive" in message, message
    if lie in ("flags", "encrypted"):
        assert info.filename in message, message


def test_bit_flips_in_the_pickle_are_caught(tmp_path, good_zip):
    data = good_zip.read_bytes()
    with zipfile.ZipFile(good_zip) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith("data.pkl"))
    with open(good_zip, "rb") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = struct.unpack("<HH", f.read(4))
    start = info.header_offset + 30 + name_len + extra_len
    for position in range(start, start + info.file_size, max(1, info.file_size // 10)):
        refused(write(tmp_path / "pklflip.pt", flipped(data, position, 0x04)))


def test_legacy_pickle_truncated(tmp_path):
    path = tmp_path / "legacy.pt"
    torch.save(state(), path, _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    for cut in (20, len(data) // 2, len(data) - 1):
        refused(write(tmp_path / f"legacy{cut}.pt", data[:cut]))


# ---- pickles that would run code ----------------------------------------------------

class RunsCommand:
    """Unpickling this runs a shell command (with a plain pickle.load)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class RunsEval:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.parametrize("payload", [RunsCommand, RunsEval])
@pytest.mark.parametrize("zip_format", [True, False], ids=["zip-mmap", "legacy-no-mmap"])
def test_pickle_that_runs_a_command_is_refused_and_never_runs(tmp_path, payload, zip_format):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    torch.save({"w": torch.ones(2), "evil": payload(marker)}, path,
               _use_new_zipfile_serialization=zip_format)
    message = refused(path)
    assert "refused" in message
    assert not marker.exists()
    # the payload is real: a plain unpickler would have run it
    if payload is RunsCommand:
        assert "system" in message


def test_malicious_pickle_inside_a_wrapper_is_refused(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"w": torch.ones(1)}, "hyper_parameters": RunsCommand(marker)}, path)
    refused(path)
    refused(path, key="state_dict")
    assert not marker.exists()


def test_safe_global_flag_cannot_unblock_os_system(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    torch.save({"evil": RunsCommand(marker)}, path)
    refused(path, safe_globals=["posix.system", "os.system"])
    assert not marker.exists()


def test_safe_global_stand_in_does_not_call_the_named_function(tmp_path):
    # --safe-global builtins.eval maps the name to an inert stand-in: eval never runs
    marker = tmp_path / "PWNED"
    path = tmp_path / "eval.pt"
    torch.save({"w": torch.ones(1), "evil": RunsEval(marker)}, path)
    with open_checkpoint(path, safe_globals=["builtins.eval"]) as checkpoint:
        assert [e.name for e in checkpoint.entries] == ["w"]
    assert not marker.exists()


# ---- safetensors headers that lie ---------------------------------------------------

def safetensors_bytes(header, data=b"", length=None):
    import json
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    length = len(text) if length is None else length
    return struct.pack("<Q", length) + text + data


GOOD = {"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}


def lie(**changes):
    entry = dict(GOOD["w"], **changes)
    return {"w": entry}


@pytest.mark.parametrize("case, header, data, expect", [
    ("offset past the end", lie(data_offsets=[0, 64]), bytes(16), "past its end"),
    ("begin after end", lie(data_offsets=[16, 0]), bytes(16), "data_offsets"),
    ("negative offset", lie(data_offsets=[-8, 8]), bytes(16), "data_offsets"),
    ("size does not match shape", lie(shape=[3, 2]), bytes(16), "needs 24"),
    ("size does not match dtype", lie(dtype="F64"), bytes(16), "needs 32"),
    ("unknown dtype", lie(dtype="F128"), bytes(16), "unknown dtype"),
    ("dtype not a string", lie(dtype=4), bytes(16), "unknown dtype"),
    ("negative dimension", lie(shape=[-2, -2]), bytes(16), "shape"),
    ("float dimension", lie(shape=[2.0, 2]), bytes(16), "shape"),
    ("bool dimension", lie(shape=[True, 16]), bytes(16), "shape"),
    ("offsets not a pair", lie(data_offsets=[0]), bytes(16), "data_offsets"),
    ("missing field", {"w": {"dtype": "F32", "shape": [4]}}, bytes(16), "data_offsets"),
    ("entry not an object", {"w": [1, 2]}, bytes(16), "dtype, shape"),
    ("header is a list", [1, 2, 3], bytes(16), "not an object"),
    ("metadata not an object", {**GOOD, "__metadata__": [1]}, bytes(16), "__metadata__"),
    ("overlapping tensors", {**GOOD, "v": {"dtype": "F32", "shape": [2],
                                           "data_offsets": [8, 16]}}, bytes(16), "overlap"),
    ("sub-byte dtype", lie(dtype="F4"), bytes(16), "not supported"),
])
def test_lying_safetensors_header(tmp_path, case, header, data, expect):
    path = write(tmp_path / "lie.safetensors", safetensors_bytes(header, data))
    assert expect in refused(path)


@pytest.mark.parametrize("length", [2 ** 40, 2 ** 63, 2 ** 64 - 1, 100_000_001])
def test_huge_header_length_is_refused_without_reading(tmp_path, length):
    path = write(tmp_path / "huge.safetensors", safetensors_bytes(GOOD, bytes(16), length=length))
    assert "header length" in refused(path)


def test_header_length_past_the_end_of_a_small_file(tmp_path):
    path = write(tmp_path / "past.safetensors", safetensors_bytes(GOOD, bytes(16), length=5000))
    assert "past the end" in refused(path)


@pytest.mark.parametrize("raw, expect", [
    (b"{not json", "not valid JSON"),
    (b'{"w": 1, "w": 2}', "duplicate"),
    (b'{"w": NaN}', "not valid JSON"),
    (b"\xff\xfe{}", "not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "JSON"),
])
def test_safetensors_header_that_is_not_json(tmp_path, raw, expect):
    path = write(tmp_path / "bad.safetensors", safetensors_bytes(raw, bytes(16)))
    assert expect in refused(path)


def test_safetensors_file_truncated_at_several_points(tmp_path):
    st = pytest.importorskip("safetensors.torch")
    path = tmp_path / "good.safetensors"
    st.save_file(state(), path)
    data = path.read_bytes()
    for cut in (1, 7, 8, 9, 40, len(data) // 2, len(data) - 1):
        refused(write(tmp_path / f"cut{cut}.safetensors", data[:cut]))


def test_bit_flips_in_a_safetensors_header_never_pass_silently(tmp_path):
    st = pytest.importorskip("safetensors.torch")
    good = tmp_path / "good.safetensors"
    expected = state()
    st.save_file(expected, good)
    data = good.read_bytes()
    header_end = 8 + struct.unpack_from("<Q", data)[0]
    path = tmp_path / "flip.safetensors"
    refusals = 0
    for position in range(0, header_end, 2):
        write(path, flipped(data, position, 0x01))
        refusals += not opens_or_refuses_st(path, expected, st)
    assert refusals > header_end // 8


def opens_or_refuses_st(path, expected, st):
    """A flipped header either fails cleanly or still describes the saved tensors (a flip in
    padding or in a name); then values agree with safetensors' own reader."""
    try:
        checkpoint = open_checkpoint(path)
    except CheckpointError as exc:
        assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc)
        return False
    reference = st.load_file(path)
    with checkpoint:
        assert sorted(e.source_name for e in checkpoint.entries) == sorted(reference)
        for entry in checkpoint.entries:
            assert torch.equal(entry.tensor(), reference[entry.source_name])
    return True


# ---- index files and directories ----------------------------------------------------

def make_index(tmp_path, weight_map, shards=None):
    import json
    st = pytest.importorskip("safetensors.torch")
    for shard, names in (shards or {}).items():
        st.save_file({n: torch.ones(2) for n in names}, tmp_path / shard)
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return index


def test_index_pointing_at_a_missing_shard(tmp_path):
    index = make_index(tmp_path, {"a": "model-1.safetensors", "b": "model-2.safetensors"},
                       {"model-1.safetensors": ["a"]})
    for target in (tmp_path, index):
        message = refused(target) if target == index else str(pytest.raises(
            CheckpointError, open_checkpoint, target).value)
        assert "model-2.safetensors" in message and "missing" in message and "'b'" in message


def test_index_listing_a_tensor_its_shard_does_not_hold(tmp_path):
    index = make_index(tmp_path, {"a": "model-1.safetensors", "ghost": "model-1.safetensors"},
                       {"model-1.safetensors": ["a"]})
    message = refused(index)
    assert "'ghost'" in message and "model-1.safetensors" in message


@pytest.mark.parametrize("shard", ["../outside.safetensors", "/etc/passwd", "", 5, "a/../../x"])
def test_index_shard_names_outside_the_directory_are_refused(tmp_path, shard):
    index = make_index(tmp_path, {"a": shard})
    assert "weight_map" in refused(index)


@pytest.mark.parametrize("text", ["{", "[]", '{"weight_map": []}', '{"metadata": {}}', "\xff"])
def test_corrupt_index_file(tmp_path, text):
    index = tmp_path / "model.safetensors.index.json"
    index.write_bytes(text.encode("utf-8", "surrogateescape") if text != "\xff" else b"\xff")
    refused(index)


def test_index_shard_that_is_itself_broken_names_the_shard(tmp_path):
    index = make_index(tmp_path, {"a": "model-1.safetensors"})
    write(tmp_path / "model-1.safetensors", b"\x00" * 4)
    message = str(pytest.raises(CheckpointError, open_checkpoint, index).value)
    assert "model-1.safetensors" in message and "\n" not in message


def test_directory_with_several_checkpoints_and_no_index(tmp_path):
    st = pytest.importorskip("safetensors.torch")
    st.save_file({"a": torch.ones(1)}, tmp_path / "one.safetensors")
    st.save_file({"b": torch.ones(1)}, tmp_path / "two.safetensors")
    message = refused(tmp_path)
    assert "one.safetensors" in message and "two.safetensors" in message


def test_directory_whose_checkpoint_is_random_bytes(tmp_path):
    write(tmp_path / "pytorch_model.bin", bytes(range(256)) * 4)
    message = str(pytest.raises(CheckpointError, open_checkpoint, tmp_path).value)
    assert "pytorch_model.bin" in message


# ---- files that are something else --------------------------------------------------

def test_whole_pickled_model_explains_state_dict(tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 2)), path)
    assert "state_dict" in refused(path)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_archive(tmp_path):
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), path)
    assert "TorchScript" in refused(path)


def test_zip_that_torch_did_not_write(tmp_path):
    path = tmp_path / "other.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    assert "not one written by torch.save" in refused(path)


class First:
    pass


class Second:
    pass


def test_every_refused_global_is_listed_with_its_flag(tmp_path):
    path = tmp_path / "many.pt"
    torch.save({"w": torch.ones(1), "a": First(), "b": Second(), "n": __import__("numpy").int64(1)},
               path)
    message = refused(path)
    for name in (f"{__name__}.First", f"{__name__}.Second"):
        assert f"--safe-global {name}" in message
    assert "numpy" not in message   # numpy metadata is allowed as inert stand-ins
    with open_checkpoint(path, safe_globals=[f"{__name__}.First", f"{__name__}.Second"]) as ck:
        assert [e.name for e in ck.entries] == ["w"]


def test_checkpoint_written_without_crc32_still_opens(tmp_path):
    path = tmp_path / "nocrc.pt"
    torch.serialization.set_crc32_options(False)
    try:
        torch.save(state(), path)
    finally:
        torch.serialization.set_crc32_options(True)
    with zipfile.ZipFile(path) as archive:
        assert all(info.CRC == 0 for info in archive.infolist())
    assert opens_or_refuses(path, state())


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_newer_pickle_protocol_gets_a_clear_refusal(tmp_path, zip_format):
    # torch's weights_only unpickler knows protocol 2 only; say so instead of dumping its text
    path = tmp_path / "p4.pt"
    torch.save(state(), path, pickle_protocol=4, _use_new_zipfile_serialization=zip_format)
    message = refused(path)
    assert "protocol" in message and "--unsafe-load" in message
    assert "WeightsUnpickler" not in message


def test_plain_pickle_of_tensors_is_refused_with_a_reason(tmp_path):
    import pickle
    path = tmp_path / "plain.pkl"
    with open(path, "wb") as f:
        pickle.dump({"w": torch.ones(2)}, f, protocol=2)
    assert "torch.save" in refused(path)


def test_hole_between_safetensors_tensors(tmp_path):
    header = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
              "b": {"dtype": "F32", "shape": [2], "data_offsets": [12, 20]}}
    path = write(tmp_path / "hole.safetensors", safetensors_bytes(header, bytes(20)))
    assert "hole" in refused(path)


def test_bytes_after_the_last_safetensors_tensor(tmp_path):
    path = write(tmp_path / "tail.safetensors", safetensors_bytes(GOOD, bytes(16) + b"<html>"))
    assert "after the last" in refused(path)


# ---- the validator agrees with safetensors' own reader ------------------------------

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as hs  # noqa: E402

ST_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
               "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


@hs.composite
def safetensors_files(draw):
    """A well-formed file, then perhaps one lie in its header or its data area."""
    import json
    count = draw(hs.integers(0, 4))
    header, offset = {}, 0
    for i in range(count):
        dtype = draw(hs.sampled_from(sorted(ST_ITEMSIZE)))
        shape = draw(hs.lists(hs.integers(0, 3), max_size=3))
        size = ST_ITEMSIZE[dtype]
        for d in shape:
            size *= d
        header[f"t{i}"] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    data = bytes(draw(hs.integers(0, 1)) for _ in range(offset))   # 0/1 bytes: valid bools
    lie = draw(hs.sampled_from(["none", "shift", "grow", "shape", "dtype", "tail", "cut"]))
    if header and lie != "none":
        victim = header[draw(hs.sampled_from(sorted(header)))]
        if lie == "shift":
            victim["data_offsets"] = [o + draw(hs.integers(-3, 3)) for o in victim["data_offsets"]]
        elif lie == "grow":
            victim["data_offsets"][1] += draw(hs.integers(1, 9))
        elif lie == "shape":
            victim["shape"] = victim["shape"] + [draw(hs.integers(0, 3))]
        elif lie == "dtype":
            victim["dtype"] = draw(hs.sampled_from(sorted(ST_ITEMSIZE)))
        elif lie == "tail":
            data += b"\x00" * draw(hs.integers(1, 9))
        elif lie == "cut":
            data = data[:max(0, len(data) - draw(hs.integers(1, 9)))]
    text = json.dumps(header).encode()
    text += b" " * draw(hs.sampled_from([0, -len(text) % 8]))
    return struct.pack("<Q", len(text)) + text + data


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=safetensors_files())
def test_validator_agrees_with_safetensors_reader(tmp_path, blob):
    from safetensors import safe_open
    path = write(tmp_path / "h.safetensors", blob)
    try:
        with safe_open(str(path), framework="pt") as f:
            theirs = {k: f.get_tensor(k) for k in f.keys()}
    except Exception:
        theirs = None
    try:
        checkpoint = open_checkpoint(path)
    except CheckpointError as exc:
        assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc)
        assert theirs is None, f"we refused a file safetensors reads: {exc}"
        hypothesis.event("both refuse")
        return
    hypothesis.event("both read")
    with checkpoint:
        assert theirs is not None, "we accepted a file safetensors refuses"
        assert sorted(e.source_name for e in checkpoint.entries) == sorted(theirs)
        for entry in checkpoint.entries:
            ours, ref = entry.tensor(), theirs[entry.source_name]
            assert ours.dtype == ref.dtype and ours.shape == ref.shape
            assert torch.equal(ours.reshape(-1).view(torch.uint8),
                               ref.reshape(-1).view(torch.uint8))


@pytest.mark.parametrize("record, expect", [("data/1", "record data/1 is missing"),
                                            ("data.pkl", "not one written by torch.save"),
                                            ("version", "record version is missing")])
def test_torch_zip_missing_a_record(tmp_path, good_zip, record, expect):
    import copy
    path = tmp_path / "missing.pt"
    with zipfile.ZipFile(good_zip) as archive, zipfile.ZipFile(path, "w") as out:
        prefix = archive.namelist()[0].split("/")[0]
        names = [i.filename for i in archive.infolist()]
        assert f"{prefix}/{record}" in names
        for info in archive.infolist():
            if info.filename != f"{prefix}/{record}":
                out.writestr(copy.copy(info), archive.read(info))
    assert expect in refused(path)


def test_directory_of_component_directories_points_at_them(tmp_path):
    st = pytest.importorskip("safetensors.torch")
    for part in ("unet", "vae"):
        (tmp_path / part).mkdir()
        st.save_file({"w": torch.ones(1)}, tmp_path / part / "diffusion_pytorch_model.safetensors")
    (tmp_path / "scheduler").mkdir()
    message = refused(tmp_path)
    assert "'unet'" in message and "'vae'" in message and "scheduler" not in message
