"""The free-space check: an output foreseen not to fit is refused before its first byte."""
import math
import os
import subprocess
import sys

import pytest
import torch

import streamexport
from streamexport import formatter, space
from streamexport.errors import OutputError
from streamexport.export import _document_head
from streamexport.sources import open_checkpoint


def _weights(seed=0):
    """An LLM-like mixture: normal weights in several dtypes, norms, ints, a transposed view,
    a 0-d and an empty tensor."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(300, 400, generator=g) * 0.02
    return {
        "embed.weight": w,
        "proj.weight": (torch.randn(256, 256, generator=g) * 0.02).to(torch.bfloat16),
        "head.weight": (torch.randn(200, 201, generator=g)).to(torch.float16),
        "transposed": (torch.randn(100, 300, generator=g)).t(),
        "norm.weight": torch.ones(700),
        "counts": torch.randint(-10 ** 12, 10 ** 12, (5000,), generator=g),
        "mask": torch.rand(3000, generator=g) > 0.5,
        "step": torch.tensor(1234.5, dtype=torch.float64),
        "empty": torch.zeros(3, 0, 2),
    }


def _estimate(path, float_format="exact", no_meta=False):
    with open_checkpoint(path) as checkpoint:
        head = len(_document_head(checkpoint.entries, no_meta))
        return (space.estimate_size(checkpoint.entries, head, float_format),
                space.size_bound(checkpoint.entries, head))


@pytest.mark.parametrize("float_format", ["exact", "shortest"])
@pytest.mark.parametrize("no_meta", [False, True])
def test_the_estimate_is_within_a_percent_of_the_real_size_and_the_bound_above_it(
        tmp_path, float_format, no_meta):
    path = tmp_path / "model.pt"
    torch.save(_weights(), path)
    out = tmp_path / "out.json"
    streamexport.export(path, out, float_format=float_format, no_meta=no_meta, fsync=False)
    real = out.stat().st_size
    estimate, bound = _estimate(path, float_format, no_meta)
    assert abs(estimate - real) <= 0.01 * real, (estimate, real)
    assert bound >= real


def test_the_bound_holds_for_the_longest_tokens_of_every_dtype(tmp_path):
    longest = {
        "f64": torch.tensor([-2.2250738585072014e-308] * 10, dtype=torch.float64),
        "f32": torch.full((10,), -1.1754942e-38, dtype=torch.float32),
        "f16": torch.full((10,), -5.96e-08, dtype=torch.float16),
        "i64": torch.full((10,), -2 ** 63, dtype=torch.int64),
        "i32": torch.full((10,), -2 ** 31, dtype=torch.int32),
        "i16": torch.full((10,), -2 ** 15, dtype=torch.int16),
        "i8": torch.full((10,), -128, dtype=torch.int8),
        "u8": torch.full((10,), 255, dtype=torch.uint8),
        "b": torch.zeros(10, dtype=torch.bool),
        "nested": torch.zeros(1, 1, 1, 1, 1, 1, 1, 1),
        "deep_empty": torch.zeros(2, 2, 2, 0),
    }
    if hasattr(torch, "uint64"):
        longest["u64"] = torch.full((10,), 2 ** 64 - 1, dtype=torch.uint64)
    path = tmp_path / "longest.pt"
    torch.save(longest, path)
    out = tmp_path / "out.json"
    streamexport.export(path, out, fsync=False)
    with open_checkpoint(path) as checkpoint:
        head = len(_document_head(checkpoint.entries, False))
        assert space.size_bound(checkpoint.entries, head) >= out.stat().st_size


@pytest.mark.parametrize("shape", [(0,), (2, 0), (0, 3), (3, 0, 2), (2, 3, 0), (2, 1, 4, 0, 5)])
def test_empty_text_bytes_is_the_length_of_the_formatted_text(shape):
    text = formatter.format_chunk(b"", "float32", shape, 0, 0)
    assert space.empty_text_bytes(shape) == len(text)
    assert text == str(torch.zeros(shape).tolist()).replace(" ", "").encode()


def test_samples_spread_over_the_whole_checkpoint(tmp_path):
    # a tensor of zeros first and one of long tokens after it: a sample of the start alone
    # would put the size at a quarter of what it is
    path = tmp_path / "skewed.pt"
    torch.save({"a_zeros": torch.zeros(100_000),
                "b_weights": torch.randn(100_000, generator=torch.Generator().manual_seed(1))},
               path)
    out = tmp_path / "out.json"
    streamexport.export(path, out, fsync=False)
    estimate, _ = _estimate(path)
    assert abs(estimate - out.stat().st_size) <= 0.01 * out.stat().st_size


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(_weights(), path)
    return path


def _free(monkeypatch, nbytes):
    seen = []

    def free_bytes(directory):
        seen.append(directory)
        return nbytes
    monkeypatch.setattr(space, "free_bytes", free_bytes)
    return seen


def test_an_output_that_will_not_fit_is_refused_before_anything_is_written(
        tmp_path, checkpoint, monkeypatch):
    out = tmp_path / "out.json"
    out.write_bytes(b"the user's previous export")
    seen = _free(monkeypatch, 50_000)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(OutputError) as caught:
        streamexport.export(checkpoint, out)
    message = str(caught.value)
    assert message.startswith(f"{out}: the output needs about ")
    assert f"{tmp_path} has 50.0 kB free" in message and "--no-space-check" in message
    assert seen == [str(tmp_path)]
    assert sorted(os.listdir(tmp_path)) == before          # no temporary file either
    assert out.read_bytes() == b"the user's previous export"


def test_an_output_that_fits_is_written_and_one_a_tenth_too_large_is_not(
        tmp_path, checkpoint, monkeypatch):
    reference = tmp_path / "reference.json"
    streamexport.export(checkpoint, reference, fsync=False, space_check=False)
    size = reference.stat().st_size
    out = tmp_path / "out.json"
    for free in (size, 2 * size):       # exactly the room it needs: the bound does not fit
        _free(monkeypatch, free)
        streamexport.export(checkpoint, out, fsync=False)
        assert out.read_bytes() == reference.read_bytes()
    out.unlink()
    _free(monkeypatch, math.floor(size / 1.1))
    with pytest.raises(OutputError, match="the output needs about"):
        streamexport.export(checkpoint, out, fsync=False)
    assert not out.exists()


def test_ample_space_costs_no_sampling(tmp_path, checkpoint, monkeypatch):
    _free(monkeypatch, 10 ** 15)

    def no_sampling(*args):
        raise AssertionError("sampled although the bound fits")
    monkeypatch.setattr(space, "estimate_size", no_sampling)
    streamexport.export(checkpoint, tmp_path / "out.json", fsync=False)


def test_no_space_check_tries_anyway_and_in_place_targets_are_not_checked(
        tmp_path, checkpoint, monkeypatch):
    seen = _free(monkeypatch, 1)
    streamexport.export(checkpoint, tmp_path / "out.json", fsync=False, space_check=False)
    streamexport.export(checkpoint, os.devnull)
    assert seen == []


def _cli(args, cwd, free):
    """The command line in a child process whose file system reports ``free`` bytes."""
    code = ("import sys; from streamexport import space; "
            f"space.free_bytes = lambda directory: {free}; "
            "from streamexport.cli import main; sys.exit(main(sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=cwd,
                          capture_output=True, timeout=120)


def test_the_command_line_says_it_in_one_line_and_exits_1(tmp_path, checkpoint):
    out = tmp_path / "out.json"
    before = sorted(os.listdir(tmp_path))
    result = _cli(["export", checkpoint, out], tmp_path, 1000)
    err = result.stderr.decode()
    assert result.returncode == 1, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert str(out) in err and "the output needs about" in err and "1.0 kB free" in err
    assert sorted(os.listdir(tmp_path)) == before

    result = _cli(["export", checkpoint, out, "--no-space-check", "--no-fsync"], tmp_path, 1000)
    assert result.returncode == 0, result.stderr.decode()
    assert out.stat().st_size > 1000


def test_free_bytes_reads_the_file_system_and_takes_no_blocks_for_unknown(tmp_path, monkeypatch):
    info = os.statvfs(tmp_path)
    # other jobs write to this disk meanwhile: the same figure within 256 MB
    assert abs(space.free_bytes(tmp_path) - info.f_bavail * info.f_frsize) < 256 << 20
    assert space.free_bytes(tmp_path / "missing" / "dir") is None

    class NoBlocks:
        f_blocks = f_bavail = 0
        f_frsize = 4096
    monkeypatch.setattr(os, "statvfs", lambda directory: NoBlocks)
    assert space.free_bytes(tmp_path) is None
