"""The export against its contract: byte-for-byte the adapter's json.dumps payload."""
import json
import threading

import pytest
import torch
import torch.nn as nn

import streamexport
from streamexport.errors import NameCollisionError, NonFiniteError, UnsupportedTensorError

from reference import payload_json, reference_bytes


def export_bytes(src, tmp_path, **options):
    out = tmp_path / "out.json"
    streamexport.export(str(src), str(out), **options)
    return out.read_bytes()


def save(obj, tmp_path, name="model.pt"):
    path = tmp_path / name
    torch.save(obj, path)
    return path


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))


# ---- the layouts and models the issue names ------------------------------------------

def test_mlp_state_dict_is_byte_identical(tmp_path):
    path = save(mlp().state_dict(), tmp_path)
    assert export_bytes(path, tmp_path) == reference_bytes(path)


def test_dataparallel_prefix_is_stripped_and_kept_on_request(tmp_path):
    path = save(nn.DataParallel(mlp()).state_dict(), tmp_path)
    stripped = export_bytes(path, tmp_path)
    assert stripped == reference_bytes(path)
    assert b'"module.' not in stripped
    kept = export_bytes(path, tmp_path, keep_prefix=True)
    assert kept == reference_bytes(path, keep_prefix=True)
    assert b'"module.0.weight"' in kept


def test_state_dict_wrapper_with_extra_entries(tmp_path):
    path = save({"state_dict": mlp().state_dict(), "epoch": 3, "arch": "mlp"}, tmp_path)
    assert export_bytes(path, tmp_path) == reference_bytes(path)


def test_model_state_dict_with_optimizer_state(tmp_path):
    model = mlp()
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(4, 5)).sum().backward()
    optimizer.step()
    path = save({"model_state_dict": model.state_dict(),
                 "optimizer_state_dict": optimizer.state_dict(), "epoch": 1}, tmp_path)
    assert export_bytes(path, tmp_path) == reference_bytes(path)


def test_non_tensor_entries_are_skipped_and_reported(tmp_path):
    path = save({"w": torch.ones(2), "step": 7, "note": "hi"}, tmp_path)
    out = tmp_path / "out.json"
    report = streamexport.export(str(path), str(out))
    assert sorted(report.skipped) == ["note", "step"]
    assert report.tensors == 1 and report.elements == 2
    assert out.read_bytes() == reference_bytes(path)


def test_bfloat16_transformer(tmp_path):
    torch.manual_seed(1)
    layer = nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32).to(torch.bfloat16)
    path = save(layer.state_dict(), tmp_path)
    assert export_bytes(path, tmp_path) == reference_bytes(path)


def test_batchnorm_with_num_batches_tracked(tmp_path):
    bn = nn.BatchNorm1d(4)
    bn(torch.randn(8, 4))
    path = save(bn.state_dict(), tmp_path)
    data = export_bytes(path, tmp_path)
    assert data == reference_bytes(path)
    assert b'"num_batches_tracked":1' in data


def every_dtype_state_dict():
    g = torch.Generator().manual_seed(2)
    base = torch.randn(3, 4, generator=g) * 100
    sd = {
        "f64": base.double() / 7,
        "f32": base / 3,
        "f16": (base / 5).half(),
        "bf16": (base / 5).bfloat16(),
        "i8": torch.tensor([-128, 0, 127], dtype=torch.int8),
        "i16": torch.tensor([-32768, 1, 32767], dtype=torch.int16),
        "i32": torch.tensor([[-2**31, 5], [0, 2**31 - 1]], dtype=torch.int32),
        "i64": torch.tensor([-2**63, -1, 0, 2**63 - 1], dtype=torch.int64),
        "u8": torch.tensor([0, 200, 255], dtype=torch.uint8),
        "u16": torch.tensor([0, 40000, 2**16 - 1], dtype=torch.uint16),
        "u32": torch.tensor([[0, 7], [2**31, 2**32 - 1]], dtype=torch.uint32),
        "u64": torch.tensor([0, 2**63 - 1, 2**63, 10**19, 2**64 - 1], dtype=torch.uint64),
        "bool": torch.tensor([[True, False], [False, True]]),
        "f8e4m3": (base / 50).to(torch.float8_e4m3fn),
        "f8e5m2": (base / 50).to(torch.float8_e5m2),
        "f8e4m3fnuz": (base / 50).to(torch.float8_e4m3fnuz),
        "f8e5m2fnuz": (base / 50).to(torch.float8_e5m2fnuz),
        "f8e8m0": (base.abs() / 50).to(torch.float8_e8m0fnu),
        "tiny": torch.tensor([5e-324, -0.0, 1e16, 1e-5, 1.7976931348623157e308], dtype=torch.float64),
    }
    return sd


def test_every_dtype(tmp_path):
    path = save(every_dtype_state_dict(), tmp_path)
    assert export_bytes(path, tmp_path) == reference_bytes(path)


def test_awkward_keys(tmp_path):
    names = ['quote"d', "back\\slash", "tab\tnew\nline\x01\x1f", "ünïcødé.权重", "emoji🙂",
             "del\x7f", "sep\u2028", "", "module.x"]
    sd = {name: torch.tensor([float(i)]) for i, name in enumerate(names)}
    path = save(sd, tmp_path)
    assert export_bytes(path, tmp_path) == reference_bytes(path)


def test_zero_dim_empty_and_size_one_shapes(tmp_path):
    sd = {"scalar": torch.tensor(2.5), "int_scalar": torch.tensor(3), "e0": torch.zeros(0),
          "e20": torch.zeros(2, 0), "e03": torch.zeros(0, 3), "e230": torch.zeros(2, 3, 0),
          "ones": torch.ones(1, 1, 3, 1)}
    path = save(sd, tmp_path)
    data = export_bytes(path, tmp_path)
    assert data == reference_bytes(path)
    assert b'"e20":[[],[]]' in data and b'"scalar":2.5' in data


def test_non_contiguous_and_tied_tensors(tmp_path):
    base = torch.arange(60, dtype=torch.float32).reshape(6, 10) / 7
    sd = {
        "transposed": base.t(),
        "strided": base[::2, 1::3],
        "offset": base[3:],
        "expanded": torch.tensor([1.5, 2.5]).expand(4, 2),
        "tied_a": base,
        "tied_b": base,
        "bf16_t": base.bfloat16().t(),
    }
    path = save(sd, tmp_path)
    # Tiny chunks force the row-block path through every shape.
    for chunk in (1, 3, 7, 1 << 18):
        assert export_bytes(path, tmp_path, chunk_elements=chunk, threads=1) == reference_bytes(path)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_output_is_identical_for_any_thread_count(tmp_path, threads):
    g = torch.Generator().manual_seed(3)
    sd = {f"layer{i}.weight": torch.randn(50, 37, generator=g) for i in range(6)}
    path = save(sd, tmp_path)
    assert export_bytes(path, tmp_path, threads=threads, chunk_elements=97) == reference_bytes(path)


def many_small_tensors():
    """More small tensors than one batch holds, of every size up to past the batching limit,
    mixed with empty, 0-d, transposed, tied and large ones, several dtypes."""
    from streamexport.export import SMALL_TENSOR_ELEMENTS
    g = torch.Generator().manual_seed(11)
    sd = {}
    for i in range(700):
        size = int(torch.randint(0, 80, (), generator=g)) if i % 50 else SMALL_TENSOR_ELEMENTS + i % 3 - 1
        dtype = [torch.float32, torch.bfloat16, torch.float64, torch.int32][i % 4]
        sd[f"block.{i:03d}.w"] = (torch.randn(size, generator=g) * 10).to(dtype)
    sd["block.100.w"] = torch.zeros(3, 0, 2)
    sd["block.101.w"] = torch.tensor(1.5)
    sd["block.102.w"] = torch.randn(9, 13, generator=g).t()
    sd["block.103.w"] = sd["block.104.w"] = torch.randn(5, generator=g)
    sd["block.200.w"] = torch.randn(300, 300, generator=g)          # many chunks
    return sd


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_many_small_tensors_are_batched_and_identical(tmp_path, threads):
    path = save(many_small_tensors(), tmp_path)
    expected = reference_bytes(path)
    for chunk in (1 << 16, 5000, 100):    # batches fill by tensor count, by elements; or none
        assert export_bytes(path, tmp_path, threads=threads, chunk_elements=chunk) == expected


def test_many_small_tensors_are_few_jobs(tmp_path, monkeypatch):
    """The point of batching: small tensors do not each cost a pipeline job and a write."""
    import importlib
    export_module = importlib.import_module("streamexport.export")
    jobs = []
    real = export_module.run_in_order

    def counting(items, work, emit, threads, **options):
        def count(item):
            jobs.append(type(item).__name__)
            return work(item)
        return real(items, count, emit, threads, **options)
    monkeypatch.setattr(export_module, "run_in_order", counting)
    sd = {f"norm.{i:04d}": torch.ones(64) for i in range(1000)}
    path = save(sd, tmp_path)
    assert export_bytes(path, tmp_path) == reference_bytes(path)
    assert jobs.count("_BatchJob") == 4 and "_ChunkJob" not in jobs and len(jobs) <= 6


def test_nonfinite_error_in_a_batch_names_its_tensor(tmp_path):
    sd = {f"t{i:02d}": torch.ones(3) for i in range(40)}
    sd["t17"] = torch.tensor([[1.0, 2.0], [float("inf"), 4.0]])
    path = save(sd, tmp_path)
    out = tmp_path / "out.json"
    with pytest.raises(NonFiniteError) as info:
        streamexport.export(str(path), str(out))
    message = str(info.value)
    assert "'t17'" in message and "1 non-finite value" in message and "[1, 0]" in message
    assert not out.exists()


def test_no_meta(tmp_path):
    path = save(mlp().state_dict(), tmp_path)
    data = export_bytes(path, tmp_path, no_meta=True)
    assert data == reference_bytes(path, no_meta=True)
    assert data.startswith(b'{"params":{')


def test_shortest_mode_round_trips_at_the_dtype(tmp_path):
    g = torch.Generator().manual_seed(4)
    sd = {"f32": torch.randn(100, generator=g) * 0.02, "bf16": torch.randn(100, generator=g).bfloat16(),
          "f64": torch.randn(10, generator=g, dtype=torch.float64)}
    path = save(sd, tmp_path)
    exact = export_bytes(path, tmp_path)
    short = export_bytes(path, tmp_path, float_format="shortest")
    assert len(short) < len(exact)
    doc = json.loads(short)
    for name, tensor in sd.items():
        back = torch.tensor(doc["params"][name], dtype=torch.float64).to(tensor.dtype)
        assert torch.equal(back, tensor), name
    assert json.loads(exact)["meta"] == doc["meta"]


# ---- refusals ------------------------------------------------------------------------

def test_name_collision_is_an_error_naming_both(tmp_path):
    path = save({"module.fc": torch.ones(1), "fc": torch.zeros(1)}, tmp_path)
    out = tmp_path / "out.json"
    with pytest.raises(NameCollisionError) as info:
        streamexport.export(str(path), str(out))
    assert "module.fc" in str(info.value) and "fc" in str(info.value)
    assert not out.exists()


@pytest.mark.parametrize("make", [
    lambda: torch.ones(2, dtype=torch.complex64),
    lambda: torch.eye(3).to_sparse(),
    lambda: torch.quantize_per_tensor(torch.ones(2), 0.1, 0, torch.quint8),
], ids=["complex", "sparse", "quantized"])
@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")  # deprecated, still exists
def test_unsupported_tensors_fail_before_any_output(tmp_path, make):
    path = save({"a": torch.ones(1), "bad.weight": make()}, tmp_path)
    out = tmp_path / "out.json"
    with pytest.raises(UnsupportedTensorError, match="bad.weight"):
        streamexport.export(str(path), str(out))
    assert list(tmp_path.iterdir()) == [path]


def test_nonfinite_error_names_tensor_count_and_first_index(tmp_path):
    t = torch.zeros(3, 4)
    t[1, 2] = float("nan")
    t[2, 0] = float("inf")
    path = save({"ok": torch.ones(2), "bad": t}, tmp_path)
    out = tmp_path / "out.json"
    with pytest.raises(NonFiniteError) as info:
        streamexport.export(str(path), str(out), chunk_elements=5)
    message = str(info.value)
    assert "'bad'" in message and "2 non-finite values" in message and "[1, 2]" in message
    assert not out.exists()


@pytest.mark.parametrize("policy,token", [("null", b"null"), ("string", b'"NaN"'),
                                          ("literal", b"NaN")])
def test_nonfinite_policies(tmp_path, policy, token):
    path = save({"t": torch.tensor([1.0, float("nan"), float("inf"), -float("inf")])}, tmp_path)
    data = export_bytes(path, tmp_path, nonfinite=policy)
    expected = {b"null": b"[1.0,null,null,null]", b'"NaN"': b'[1.0,"NaN","Infinity","-Infinity"]',
                b"NaN": b"[1.0,NaN,Infinity,-Infinity]"}[token]
    assert data.endswith(b'"params":{"t":' + expected + b"}}")


# ---- dumps ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(every_dtype_state_dict()))
def test_dumps_matches_json_dumps_of_tolist(name):
    tensor = every_dtype_state_dict()[name]
    expected = json.dumps(tensor.tolist(), separators=(",", ":")).encode()
    assert streamexport.dumps(tensor) == expected
    assert streamexport.dumps(tensor.t() if tensor.dim() == 2 else tensor) == \
        json.dumps((tensor.t() if tensor.dim() == 2 else tensor).tolist(), separators=(",", ":")).encode()


def test_dumps_takes_numpy_arrays():
    import numpy as np
    array = np.arange(12, dtype=np.float32).reshape(3, 4) / 3
    array.setflags(write=False)
    assert streamexport.dumps(array) == json.dumps(array.tolist(), separators=(",", ":")).encode()


# ---- concurrency ---------------------------------------------------------------------

def test_concurrent_exports_in_threads_give_the_lone_bytes(tmp_path):
    g = torch.Generator().manual_seed(5)
    paths = []
    for i in range(4):
        sd = {f"w{j}": torch.randn(30, 20, generator=g).to([torch.float32, torch.bfloat16,
                                                           torch.float64, torch.float16][i])
              for j in range(3)}
        paths.append(save(sd, tmp_path, f"m{i}.pt"))
    lone = [export_bytes(p, tmp_path) for p in paths]
    results = [None] * len(paths)

    def run(i):
        out = tmp_path / f"c{i}.json"
        streamexport.export(str(paths[i]), str(out), threads=2, chunk_elements=64)
        results[i] = out.read_bytes()

    workers = [threading.Thread(target=run, args=(i,)) for i in range(len(paths))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert results == lone


def test_name_with_lone_surrogate_is_refused_before_output(tmp_path):
    from streamexport.errors import CheckpointError
    path = save({"bad\ud800name": torch.ones(1)}, tmp_path)
    out = tmp_path / "out.json"
    with pytest.raises(CheckpointError, match="lone surrogate"):
        streamexport.export(str(path), str(out))
    assert not out.exists()


@pytest.mark.parametrize("threads", [1, 3])
def test_reused_buffers_carry_no_text_from_one_chunk_into_the_next(tmp_path, threads):
    """Chunks whose texts differ widely in length (long float64 tokens, one-digit ints, a
    deep shape with many brackets) share the exporter's buffers, in every order."""
    torch.manual_seed(1)
    path = save({"a.f64": torch.randn(301, dtype=torch.float64) * 1e300,
                 "b.int8": torch.randint(0, 9, (1000,), dtype=torch.int8),
                 "c.deep": torch.randn(40, 1, 1, 1, 3),
                 "d.bool": torch.rand(250) > 0.5,
                 "e.f64": torch.randn(17, dtype=torch.float64)}, tmp_path)
    expected = reference_bytes(path)
    for chunk in (7, 64, 1000):
        assert export_bytes(path, tmp_path, threads=threads, chunk_elements=chunk) == expected


@pytest.mark.parametrize("shape", [(2 ** 62, 0), (2 ** 13, 2 ** 12, 2 ** 10, 0, 5)])
def test_an_empty_tensor_with_huge_outer_dimensions_is_refused_in_one_line(tmp_path, shape):
    path = save({"a": torch.ones(2), "huge": torch.empty(shape)}, tmp_path)
    out = tmp_path / "out.json"
    with pytest.raises(UnsupportedTensorError) as raised:
        streamexport.export(str(path), str(out))
    message = str(raised.value)
    assert message.startswith(f"{path}: tensor 'huge' has shape {list(shape)}"), message
    assert "empty lists" in message and "\n" not in message
    assert not out.exists()


def test_an_empty_tensor_with_many_empty_lists_within_the_limit_is_written(tmp_path):
    path = save({"e": torch.empty(100_000, 0), "f": torch.empty(0, 3)}, tmp_path)
    assert export_bytes(path, tmp_path) == reference_bytes(path)
