"""open_checkpoint on checkpoints written by the real producers (torch.save, safetensors).

Each test writes its checkpoint with the producer, opens it with open_checkpoint and
compares names, meta and tensor values with what torch.load / safetensors give.
"""
import argparse
import collections
import os
import sys
import types
import warnings
import zipfile

import numpy as np
import pytest
import torch

from streamexport import _safe_globals
from streamexport.errors import (CheckpointError, LayoutError, NameCollisionError,
                                 UnsupportedTensorError)
from streamexport.sources import final_name, open_checkpoint


def opened(path, **options):
    """open_checkpoint with every warning turned into an error: none may leak."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return open_checkpoint(path, **options)


def assert_same_tensors(checkpoint, expected):
    """entries match ``expected`` (name -> tensor): order, meta and values, bit for bit."""
    assert [e.name for e in checkpoint.entries] == sorted(expected)
    for entry in checkpoint.entries:
        want = expected[entry.name]
        got = entry.tensor()
        assert entry.torch_dtype == str(want.dtype)
        assert entry.shape == tuple(want.shape)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert torch.equal(got.reshape(-1).view(torch.uint8),
                           want.contiguous().reshape(-1).view(torch.uint8))


def mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))


# ---- layouts ------------------------------------------------------------------------

def test_raw_state_dict_is_mapped_and_equal_to_torch_load(tmp_path):
    path = tmp_path / "mlp.pt"
    state = mlp().state_dict()
    torch.save(state, path)
    with opened(path) as ck:
        assert_same_tensors(ck, torch.load(path, weights_only=True))
        assert all(e.mapped for e in ck.entries)
        assert all(e.file == str(path) and e.dtype == "float32" for e in ck.entries)
        assert ck.skipped == [] and ck.warnings == []


def test_state_dict_wrapper_skips_and_records_extras(tmp_path):
    path = tmp_path / "wrapped.pt"
    state = mlp().state_dict()
    torch.save({"state_dict": {**state, "step": 7, "note": "x"}, "epoch": 3}, path)
    with opened(path) as ck:
        assert_same_tensors(ck, state)
        assert sorted(ck.skipped) == ["note", "step"]


def test_model_state_dict_with_optimizer_state(tmp_path):
    model = mlp()
    # what SGD(momentum=0.9).state_dict() holds after a step, written out by hand:
    # torch.optim imports torch._dynamo, which takes seconds
    params = list(model.parameters())
    optimizer_state = {
        "state": {i: {"momentum_buffer": torch.randn_like(p)} for i, p in enumerate(params)},
        "param_groups": [{"lr": 0.1, "momentum": 0.9, "dampening": 0, "weight_decay": 0,
                          "nesterov": False, "params": list(range(len(params)))}],
    }
    path = tmp_path / "train.pt"
    torch.save({"model_state_dict": model.state_dict(),
                "optimizer_state_dict": optimizer_state, "epoch": 1}, path)
    with opened(path) as ck:
        assert_same_tensors(ck, model.state_dict())


def test_state_dict_checked_before_model_state_dict(tmp_path):
    path = tmp_path / "both.pt"
    torch.save({"state_dict": {"a": torch.ones(1)}, "model_state_dict": {"b": torch.ones(1)}}, path)
    with opened(path) as ck:
        assert [e.name for e in ck.entries] == ["a"]


def test_wrapper_value_that_is_not_a_dict_means_raw_layout(tmp_path):
    path = tmp_path / "raw.pt"
    torch.save({"state_dict": torch.zeros(2), "w": torch.ones(3)}, path)
    with opened(path) as ck:
        assert [e.name for e in ck.entries] == ["state_dict", "w"]


def test_key_path_selects_nested_dict(tmp_path):
    path = tmp_path / "nested.pt"
    inner = {"x.weight": torch.arange(6.0).reshape(2, 3)}
    torch.save({"a": {"b": inner}, "other": {"y": torch.ones(1)}}, path)
    with opened(path, key="a.b") as ck:
        assert_same_tensors(ck, inner)


def test_key_that_itself_contains_dots(tmp_path):
    path = tmp_path / "dotted.pt"
    torch.save({"ema.v1": {"w": torch.ones(2)}, "w": torch.zeros(1)}, path)
    with opened(path, key="ema.v1") as ck:
        assert [e.name for e in ck.entries] == ["w"]
        assert torch.equal(ck.entries[0].tensor(), torch.ones(2))


def test_missing_key_names_the_top_level_keys(tmp_path):
    path = tmp_path / "k.pt"
    torch.save({"model": {"w": torch.ones(1)}, "opt": {}}, path)
    with pytest.raises(LayoutError, match=r"--key nope: no such entry.*'model', 'opt'") as info:
        opened(path, key="nope")
    assert str(path) in str(info.value)


def test_key_pointing_at_a_tensor_is_a_layout_error(tmp_path):
    path = tmp_path / "k.pt"
    torch.save({"w": torch.ones(1)}, path)
    with pytest.raises(LayoutError, match="not a dict"):
        opened(path, key="w")


def test_extra_wrapper_used_when_top_level_has_no_tensors(tmp_path):
    path = tmp_path / "ema.pt"
    state = {"w": torch.ones(2)}
    torch.save({"model_ema": state, "epoch": 2}, path)
    with opened(path) as ck:
        assert_same_tensors(ck, state)


def test_ambiguous_wrappers_list_each_candidate_and_its_key(tmp_path):
    path = tmp_path / "amb.pt"
    torch.save({"model": {"w": torch.ones(2)}, "ema": {"w": torch.zeros(2)}}, path)
    with pytest.raises(LayoutError) as info:
        opened(path)
    message = str(info.value)
    assert "--key model" in message and "--key ema" in message and str(path) in message
    assert "\n" not in message
    with opened(path, key="ema") as ck:
        assert torch.equal(ck.entries[0].tensor(), torch.zeros(2))


def test_state_dict_wins_but_warns_about_an_ema_copy(tmp_path):
    path = tmp_path / "sd_ema.pt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "ema": {"w": torch.zeros(2)}}, path)
    with opened(path) as ck:
        assert torch.equal(ck.entries[0].tensor(), torch.ones(2))
        assert any("--key ema" in w for w in ck.warnings)


def test_no_top_level_tensors_suggests_nested_keys(tmp_path):
    path = tmp_path / "deep.pt"
    torch.save({"trainer": {"net": {"w": torch.ones(1)}}, "epoch": 1}, path)
    with pytest.raises(LayoutError, match=r"--key trainer\.net"):
        opened(path)


def test_checkpoint_without_tensors_gives_no_entries(tmp_path):
    path = tmp_path / "empty.pt"
    torch.save({}, path)
    with opened(path) as ck:
        assert ck.entries == [] and ck.skipped == []


def test_not_a_dict_is_a_layout_error(tmp_path):
    for i, obj in enumerate([torch.ones(3), [torch.ones(1)], 5]):
        path = tmp_path / f"notdict{i}.pt"
        torch.save(obj, path)
        with pytest.raises(LayoutError, match="not a dict") as info:
            opened(path)
        assert str(info.value).startswith(str(path) + ": ")


# ---- names --------------------------------------------------------------------------

def test_dataparallel_prefix_stripped_by_default(tmp_path):
    path = tmp_path / "dp.pt"
    model = mlp()
    torch.save(torch.nn.DataParallel(model).state_dict(), path)
    with opened(path) as ck:
        assert_same_tensors(ck, model.state_dict())
        assert ck.entries[0].source_name.startswith("module.")
    with opened(path, keep_prefix=True) as ck:
        assert all(e.name.startswith("module.") for e in ck.entries)


def test_only_one_leading_module_prefix_is_stripped():
    assert final_name("module.module.w") == "module.w"
    assert final_name("a.module.w") == "a.module.w"
    assert final_name("module.w", keep_prefix=True) == "module.w"


def test_strip_prefixes_apply_in_order_after_the_default():
    assert final_name("module._orig_mod.w", strip_prefixes=["_orig_mod."]) == "w"
    assert final_name("_forward_module._orig_mod.w",
                      strip_prefixes=["_forward_module.", "_orig_mod."]) == "w"
    # in the given order: the second prefix only applies to what the first left
    assert final_name("_orig_mod._forward_module.w",
                      strip_prefixes=["_forward_module.", "_orig_mod."]) == "_forward_module.w"


def test_collision_names_both_source_names(tmp_path):
    path = tmp_path / "collide.pt"
    torch.save({"module.w": torch.ones(1), "w": torch.zeros(1)}, path)
    with pytest.raises(NameCollisionError) as info:
        opened(path)
    message = str(info.value)
    assert "'module.w'" in message and "'w'" in message and str(path) in message
    with opened(path, keep_prefix=True) as ck:
        assert [e.name for e in ck.entries] == ["module.w", "w"]


def test_strip_prefix_collision_is_an_error(tmp_path):
    path = tmp_path / "compiled.pt"
    torch.save({"_orig_mod.w": torch.ones(1), "w": torch.zeros(1)}, path)
    with pytest.raises(NameCollisionError, match="_orig_mod.w"):
        opened(path, strip_prefixes=["_orig_mod."])


def test_entries_sorted_in_python_string_order(tmp_path):
    path = tmp_path / "order.pt"
    names = ["b", "B", "a.10", "a.9", "é", "z\"q", "back\\slash", "ctl\x01", "日本"]
    torch.save({n: torch.ones(1) for n in names}, path)
    with opened(path) as ck:
        assert [e.name for e in ck.entries] == sorted(names)


def test_include_and_exclude_globs_on_final_names(tmp_path):
    path = tmp_path / "sel.pt"
    torch.save(torch.nn.DataParallel(mlp()).state_dict(), path)
    with opened(path, include=["0.*"]) as ck:
        assert [e.name for e in ck.entries] == ["0.bias", "0.weight"]
    with opened(path, exclude=["*.bias"]) as ck:
        assert [e.name for e in ck.entries] == ["0.weight", "2.weight"]
    with opened(path, include=["0.*", "2.*"], exclude=["*.weight"]) as ck:
        assert [e.name for e in ck.entries] == ["0.bias", "2.bias"]


def test_strict_refuses_non_tensor_entries_by_name(tmp_path):
    path = tmp_path / "strict.pt"
    torch.save({"w": torch.ones(1), "num_steps": 3}, path)
    with pytest.raises(LayoutError, match="num_steps"):
        opened(path, strict=True)
    torch.save({"w": torch.ones(1)}, path)
    with opened(path, strict=True) as ck:
        assert len(ck.entries) == 1


# ---- tensors ------------------------------------------------------------------------

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int8, torch.int16,
          torch.int32, torch.int64, torch.uint8, torch.bool, torch.float8_e4m3fn, torch.float8_e5m2,
          torch.uint16, torch.uint32, torch.uint64, torch.float8_e4m3fnuz, torch.float8_e5m2fnuz,
          torch.float8_e8m0fnu]
UNSIGNED = (torch.uint8, torch.uint16, torch.uint32, torch.uint64, torch.float8_e8m0fnu)


def random_of(dtype, *shape, scale):
    """Normal values times ``scale`` as ``dtype`` (their magnitudes for an unsigned one: a
    negative float's conversion to an unsigned integer is undefined)."""
    base = torch.randn(*shape) * scale
    return (base.abs() if dtype in UNSIGNED else base).to(dtype)


def every_dtype():
    torch.manual_seed(1)
    state = {}
    for dtype in DTYPES:
        state[str(dtype).split(".")[1]] = random_of(dtype, 3, 5, scale=10)
    state["scalar"] = torch.tensor(2.5)
    state["empty"] = torch.zeros(2, 0)
    state["transposed"] = torch.arange(12.0).reshape(3, 4).t()
    return state


def test_every_dtype_round_trips(tmp_path):
    path = tmp_path / "dtypes.pt"
    state = every_dtype()
    torch.save(state, path)
    with opened(path) as ck:
        assert_same_tensors(ck, state)
        names = {e.name: e.dtype for e in ck.entries}
        assert names["bfloat16"] == "bfloat16" and names["float8_e5m2"] == "float8_e5m2"
        assert names["bool"] == "bool"


def test_tied_weights_give_both_names(tmp_path):
    path = tmp_path / "tied.pt"
    w = torch.randn(4, 3)
    torch.save({"embed.weight": w, "head.weight": w}, path)
    with opened(path) as ck:
        a, b = (e.tensor() for e in ck.entries)
        assert torch.equal(a, w) and torch.equal(b, w)


def file_mapped_at(address):
    """The file whose mapping holds ``address`` in this process (Linux), else None."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            low, high = (int(x, 16) for x in fields[0].split("-"))
            if low <= address < high:
                return fields[5].strip() if len(fields) == 6 else None
    return None


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs /proc/self/maps")
def test_mapped_tensors_live_in_a_read_only_file_mapping(tmp_path):
    path = tmp_path / "map.pt"
    torch.save({"w": torch.randn(1000), "v": torch.randn(10)}, path)
    with opened(path) as ck:
        for entry in ck.entries:
            assert entry.mapped
            # the data is in the file's mapping, not a heap copy: page release is safe
            assert file_mapped_at(entry.tensor().data_ptr()) == str(path)
    legacy = tmp_path / "legacy.pt"
    torch.save({"w": torch.randn(1000)}, legacy, _use_new_zipfile_serialization=False)
    with opened(legacy) as ck:
        assert not ck.entries[0].mapped
        assert file_mapped_at(ck.entries[0].tensor().data_ptr()) != str(legacy)


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor")
@pytest.mark.parametrize("make, kind", [
    (lambda: torch.ones(2, dtype=torch.complex64), "complex"),
    (lambda: torch.eye(3).to_sparse(), "sparse"),
    (lambda: torch.quantize_per_tensor(torch.ones(3), 0.1, 0, torch.qint8), "quantized"),
    (lambda: torch.empty(3, device="meta"), "meta"),
])
def test_unsupported_tensors_refused_by_key(tmp_path, make, kind):
    path = tmp_path / f"{kind}.pt"
    torch.save({"ok": torch.ones(1), "module.bad": make()}, path)
    with pytest.raises(UnsupportedTensorError) as info:
        opened(path)
    message = str(info.value)
    assert "module.bad" in message and str(path) in message and "\n" not in message


def test_unsupported_tensor_outside_the_selection_is_fine(tmp_path):
    path = tmp_path / "cx.pt"
    torch.save({"ok": torch.ones(1), "bad": torch.ones(2, dtype=torch.complex64)}, path)
    with opened(path, exclude=["bad"]) as ck:
        assert [e.name for e in ck.entries] == ["ok"]


def test_legacy_pickle_loads_whole_with_a_warning(tmp_path):
    path = tmp_path / "legacy.pt"
    state = mlp().state_dict()
    torch.save({"state_dict": state}, path, _use_new_zipfile_serialization=False)
    with opened(path) as ck:
        assert_same_tensors(ck, state)
        assert not any(e.mapped for e in ck.entries)
        assert len(ck.warnings) == 1
        assert "legacy" in ck.warnings[0] and "cannot be memory-mapped" in ck.warnings[0]
        assert "bytes" in ck.warnings[0] or "KB" in ck.warnings[0]


def test_close_drops_tensors(tmp_path):
    path = tmp_path / "c.pt"
    torch.save({"w": torch.ones(1)}, path)
    ck = opened(path)
    entry = ck.entries[0]
    ck.close()
    with pytest.raises(CheckpointError, match="closed"):
        entry.tensor()


# ---- metadata weights_only refuses --------------------------------------------------

def fake_module(monkeypatch, dotted):
    """Register an importable module ``dotted`` (and its parents) for pickling."""
    parts = dotted.split(".")
    for i in range(1, len(parts) + 1):
        name = ".".join(parts[:i])
        if name not in sys.modules:
            monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    return sys.modules[dotted]


def lightning_checkpoint(monkeypatch, model):
    data = fake_module(monkeypatch, "lightning.fabric.utilities.data")

    class AttributeDict(dict):
        pass

    AttributeDict.__module__ = data.__name__
    AttributeDict.__qualname__ = "AttributeDict"
    data.AttributeDict = AttributeDict
    return {
        "epoch": np.int64(4),
        "global_step": 120,
        "pytorch-lightning_version": "2.4.0",
        "state_dict": model.state_dict(),
        "hyper_parameters": AttributeDict(lr=np.float32(1e-3), hidden=np.int64(4)),
        "hparams": argparse.Namespace(lr=0.001, layers=[3, 4, 2], seed=np.int64(7)),
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 4}}}},
        "callbacks": {"ModelCheckpoint": {"best_model_score": torch.tensor(0.5),
                                          "dirpath": "/tmp/ckpt"}},
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.001}]}],
        "rng": np.random.get_state()[1][:8],
        "table": collections.defaultdict(list, {"a": [1]}),
    }


def test_lightning_checkpoint_exports_without_unsafe_load(tmp_path, monkeypatch):
    model = mlp()
    path = tmp_path / "lightning.ckpt"
    torch.save(lightning_checkpoint(monkeypatch, model), path)
    with pytest.raises(Exception):  # plain weights_only loading refuses it
        torch.load(path, weights_only=True)
    with opened(path) as ck:
        assert_same_tensors(ck, model.state_dict())
        assert all(e.mapped for e in ck.entries)


def numpy_core_names(path):
    """Rewrite a torch zip checkpoint's pickle to use numpy 1.x's ``numpy.core`` names."""
    with zipfile.ZipFile(path) as archive:
        records = [(info, archive.read(info)) for info in archive.infolist()]
    out = str(path) + ".np1"
    count = 0
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        for info, data in records:
            if info.filename.endswith("data.pkl"):
                count = data.count(b"numpy._core.")
                data = data.replace(b"numpy._core.", b"numpy.core.")
            archive.writestr(info, data)
    assert count > 0
    return out


def test_numpy_metadata_under_both_module_names(tmp_path):
    state = {"w": torch.randn(3, 2)}
    path = tmp_path / "np.pt"
    torch.save({"state_dict": state, "step": np.int64(3), "loss": np.float32(0.25),
                "arr": np.arange(4.0), "mask": np.array([True, False])}, path)
    with zipfile.ZipFile(path) as archive:
        pickle_bytes = b"".join(archive.read(n) for n in archive.namelist() if n.endswith(".pkl"))
    assert b"numpy._core" in pickle_bytes or b"numpy.core" in pickle_bytes
    old = numpy_core_names(path)
    for p in (path, old):
        with opened(p) as ck:
            assert_same_tensors(ck, state)


class UserConfig:
    def __init__(self):
        self.depth = 3


class UserDict(dict):
    pass


def test_unknown_global_error_names_it_and_the_flag(tmp_path):
    path = tmp_path / "cfg.pt"
    torch.save({"w": torch.ones(1), "cfg": UserConfig()}, path)
    with pytest.raises(CheckpointError) as info:
        opened(path)
    message = str(info.value)
    assert f"--safe-global {__name__}.UserConfig" in message
    assert message.startswith(str(path)) and "\n" not in message


def test_safe_global_flag_allows_it_as_an_inert_stand_in(tmp_path):
    path = tmp_path / "cfg.pt"
    torch.save({"w": torch.ones(1), "cfg": UserConfig(), "extra": UserDict(a=1)}, path)
    with opened(path, safe_globals=[f"{__name__}.UserConfig", f"{__name__}.UserDict"]) as ck:
        assert [e.name for e in ck.entries] == ["w"]
        assert sorted(ck.skipped) == ["cfg", "extra"]


def test_stand_ins_run_no_code_of_the_real_class(tmp_path):
    calls = []

    class Loud:
        def __setstate__(self, state):
            calls.append("setstate")

    Loud.__module__, Loud.__qualname__ = __name__, "Loud"
    globals()["Loud"] = Loud
    try:
        path = tmp_path / "loud.pt"
        obj = Loud()
        obj.x = 1
        torch.save({"w": torch.ones(1), "loud": obj}, path)
        with opened(path, safe_globals=[f"{__name__}.Loud"]) as ck:
            assert len(ck.entries) == 1
        assert calls == []
    finally:
        del globals()["Loud"]


def test_safe_global_of_a_bad_form_is_an_error(tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"w": torch.ones(1)}, path)
    with pytest.raises(CheckpointError, match="module.Name"):
        opened(path, safe_globals=["not a name"])


def test_stand_in_allow_list_is_removed_after_loading(tmp_path):
    from torch import _weights_only_unpickler as unpickler
    before = set(unpickler._get_user_allowed_globals())
    path = tmp_path / "np.pt"
    torch.save({"w": torch.ones(1), "n": np.int64(1)}, path)
    opened(path).close()
    assert set(unpickler._get_user_allowed_globals()) == before
    assert "argparse.Namespace" in {name for _, name in _safe_globals.allow_list()}


# ---- safetensors --------------------------------------------------------------------

safetensors_torch = pytest.importorskip("safetensors.torch")

ST_DTYPES = [d for d in DTYPES]


def st_state():
    torch.manual_seed(5)
    state = {f"module.{str(d).split('.')[1]}": random_of(d, 4, 3, scale=8) for d in ST_DTYPES}
    state["module.scalar"] = torch.tensor(-0.5, dtype=torch.float64)
    state["module.empty"] = torch.zeros(0, 5)
    state["module.long_row"] = torch.arange(1000, dtype=torch.int64)
    return state


def test_safetensors_file_equals_safetensors_load_file(tmp_path):
    path = tmp_path / "model.safetensors"
    safetensors_torch.save_file(st_state(), path, metadata={"format": "pt"})
    reference = safetensors_torch.load_file(path)
    with opened(path) as ck:
        assert_same_tensors(ck, {final_name(k): v for k, v in reference.items()})
        assert {e.name: e.torch_dtype for e in ck.entries}["bfloat16"] == "torch.bfloat16"
        assert all(e.mapped and e.file == str(path) for e in ck.entries)
        assert ck.skipped == [] and ck.warnings == []


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs /proc/self/maps")
def test_safetensors_tensors_live_in_the_file_mapping(tmp_path):
    path = tmp_path / "m.safetensors"
    safetensors_torch.save_file({"w": torch.randn(5000), "b": torch.randn(7)}, path)
    with opened(path) as ck:
        for entry in ck.entries:
            assert file_mapped_at(entry.tensor().data_ptr()) == str(path)


def handwritten_safetensors(path, tensors, pad=True):
    """A safetensors file written from the spec, optionally without header padding."""
    import json
    names = {torch.float32: "F32", torch.int16: "I16", torch.float64: "F64", torch.uint8: "U8"}
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        data = t.contiguous().view(torch.uint8).numpy().tobytes()
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    elif len(text) % 8 == 0:
        text += b" "
    path.write_bytes(len(text).to_bytes(8, "little") + text + b"".join(blobs))
    return path


def test_misaligned_safetensors_data_is_copied_and_marked_unmapped(tmp_path):
    tensors = {"a": torch.arange(3, dtype=torch.uint8), "w": torch.randn(4, 2),
               "z": torch.arange(5, dtype=torch.float64)}
    path = handwritten_safetensors(tmp_path / "odd.safetensors", tensors, pad=False)
    with opened(path) as ck:
        assert_same_tensors(ck, tensors)
        mapped = {e.name: e.mapped for e in ck.entries}
        assert mapped["a"] is True and (mapped["w"] is False or mapped["z"] is False)


def test_safetensors_key_option_is_a_layout_error(tmp_path):
    path = tmp_path / "m.safetensors"
    safetensors_torch.save_file({"w": torch.ones(1)}, path)
    with pytest.raises(LayoutError, match="--key"):
        opened(path, key="model")


def test_safetensors_unsupported_dtype_is_refused_unless_excluded(tmp_path):
    path = tmp_path / "u.safetensors"
    safetensors_torch.save_file({"ok": torch.ones(2), "idx": torch.ones(3, dtype=torch.complex64)},
                                path)
    with pytest.raises(UnsupportedTensorError, match="idx") as info:
        opened(path)
    assert str(info.value).startswith(f"{path}: ")
    with opened(path, exclude=["idx"]) as ck:
        assert [e.name for e in ck.entries] == ["ok"]


def test_fp8_with_scale_companions_warns_values_not_dequantized(tmp_path):
    path = tmp_path / "fp8.safetensors"
    torch.manual_seed(2)
    weight = torch.randn(4, 4).to(torch.float8_e4m3fn)
    safetensors_torch.save_file({"mlp.weight": weight, "mlp.weight_scale_inv": torch.ones(1),
                                 "other.weight": torch.randn(2).to(torch.float8_e5m2)}, path)
    with opened(path) as ck:
        assert len(ck.warnings) == 1
        assert "not dequantized" in ck.warnings[0] and "'mlp.weight'" in ck.warnings[0]
        entry = next(e for e in ck.entries if e.name == "mlp.weight")
        assert torch.equal(entry.tensor().view(torch.uint8), weight.view(torch.uint8))
    plain = tmp_path / "fp8plain.safetensors"
    safetensors_torch.save_file({"w": weight, "w_scale": torch.ones(1)}, plain)
    with opened(plain) as ck:
        assert any("not dequantized" in w for w in ck.warnings)
    safetensors_torch.save_file({"w": weight}, plain)
    with opened(plain) as ck:
        assert ck.warnings == []


# ---- directories and index files ----------------------------------------------------

def sharded(tmp_path, state, shards=3, fmt="safetensors", name="model"):
    """Shards and an index laid out as Hugging Face's save_pretrained writes them."""
    import json
    names = sorted(state)
    groups = [names[i::shards] for i in range(shards)]
    weight_map, total = {}, 0
    for i, group in enumerate(groups, 1):
        if fmt == "safetensors":
            shard = f"{name}-{i:05d}-of-{shards:05d}.safetensors"
            safetensors_torch.save_file({k: state[k] for k in group}, tmp_path / shard,
                                        metadata={"format": "pt"})
        else:
            shard = f"pytorch_model-{i:05d}-of-{shards:05d}.bin"
            torch.save({k: state[k] for k in group}, tmp_path / shard)
        for k in group:
            weight_map[k] = shard
            total += state[k].numel() * state[k].element_size()
    index = tmp_path / (f"{name}.safetensors.index.json" if fmt == "safetensors"
                        else "pytorch_model.bin.index.json")
    index.write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    return index


def transformer_state():
    torch.manual_seed(4)
    state = {}
    for layer in range(3):
        for part in ("q", "k", "v", "o"):
            state[f"model.layers.{layer}.attn.{part}.weight"] = torch.randn(8, 8).to(torch.bfloat16)
        state[f"model.layers.{layer}.norm.weight"] = torch.ones(8, dtype=torch.bfloat16)
    state["lm_head.weight"] = torch.randn(16, 8).to(torch.bfloat16)
    return state


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_sharded_directory_sorted_across_shards(tmp_path, fmt):
    state = transformer_state()
    index = sharded(tmp_path, state, fmt=fmt)
    for target in (tmp_path, index):
        with opened(target) as ck:
            assert_same_tensors(ck, state)
            assert len({e.file for e in ck.entries}) == 3
            assert all(e.mapped for e in ck.entries)
            assert ck.path == str(target)


def test_directory_with_both_formats_uses_safetensors(tmp_path):
    state = {"w": torch.ones(2), "b": torch.zeros(1)}
    sharded(tmp_path, state, shards=2, fmt="safetensors")
    sharded(tmp_path, {"other": torch.ones(1)}, shards=1, fmt="bin")
    torch.save({"x": torch.ones(1)}, tmp_path / "pytorch_model.bin")
    with opened(tmp_path) as ck:
        assert [e.name for e in ck.entries] == ["b", "w"]
        assert all(e.file.endswith(".safetensors") for e in ck.entries)


@pytest.mark.parametrize("filename, save", [
    ("model.safetensors", lambda s, p: safetensors_torch.save_file(s, p)),
    ("pytorch_model.bin", lambda s, p: torch.save(s, p)),
])
def test_directory_with_a_single_checkpoint_file(tmp_path, filename, save):
    state = {"w": torch.randn(3), "module.v": torch.randn(2)}
    save(state, tmp_path / filename)
    (tmp_path / "config.json").write_text("{}")
    with opened(tmp_path) as ck:
        assert_same_tensors(ck, {"w": state["w"], "v": state["module.v"]})


def test_selection_and_prefixes_across_shards(tmp_path):
    state = {f"_orig_mod.layer{i}.{p}": torch.full((2,), float(i)) for i in range(4)
             for p in ("weight", "bias")}
    sharded(tmp_path, state, shards=2)
    with opened(tmp_path, strip_prefixes=["_orig_mod."], include=["layer1.*", "layer3.*"],
                exclude=["*.bias"]) as ck:
        assert [e.name for e in ck.entries] == ["layer1.weight", "layer3.weight"]


def test_collision_across_shards_names_both_files(tmp_path):
    state = {"module.w": torch.ones(1), "w": torch.zeros(1)}
    sharded(tmp_path, state, shards=2)
    with pytest.raises(NameCollisionError) as info:
        opened(tmp_path)
    message = str(info.value)
    assert "'module.w'" in message and "'w'" in message and "00001-of-00002" in message


def test_shard_tensors_missing_from_the_index_are_ignored_with_a_warning(tmp_path):
    import json
    index = sharded(tmp_path, {"a": torch.ones(1), "b": torch.ones(1)}, shards=1)
    data = json.loads(index.read_text())
    del data["weight_map"]["b"]
    index.write_text(json.dumps(data))
    with opened(tmp_path) as ck:
        assert [e.name for e in ck.entries] == ["a"]
        assert any("not in the index" in w and "'b'" in w for w in ck.warnings)


def test_lightning_style_checkpoint_in_a_directory_with_other_files(tmp_path, monkeypatch):
    model = mlp()
    torch.save(lightning_checkpoint(monkeypatch, model), tmp_path / "last.ckpt")
    (tmp_path / "hparams.yaml").write_text("lr: 0.001\n")
    with opened(tmp_path) as ck:
        assert_same_tensors(ck, model.state_dict())


# ---- end to end: the exported bytes are the contract payload of the same tensors ----

def exported(src, tmp_path, **options):
    import streamexport
    out = tmp_path / "out.json"
    streamexport.export(src, out, threads=1, fsync=False, **options)
    return out.read_bytes()


def test_export_of_sharded_safetensors_matches_the_contract(tmp_path):
    from reference import payload_json
    state = transformer_state()
    sharded(tmp_path, state, shards=3)
    assert exported(tmp_path, tmp_path) == payload_json(state)


def test_export_of_lightning_checkpoint_matches_the_contract(tmp_path, monkeypatch):
    from reference import payload_json
    model = mlp()
    path = tmp_path / "last.ckpt"
    torch.save(lightning_checkpoint(monkeypatch, model), path)
    assert exported(path, tmp_path) == payload_json(dict(model.state_dict()))


def test_export_of_safetensors_with_prefixes_and_selection(tmp_path):
    from reference import payload_json
    state = {"_orig_mod.enc.w": torch.randn(2, 3), "_orig_mod.enc.b": torch.randn(2),
             "_orig_mod.dec.w": torch.randn(3, 2).to(torch.float16)}
    path = tmp_path / "model.safetensors"
    safetensors_torch.save_file(state, path)
    want = {"enc.w": state["_orig_mod.enc.w"], "dec.w": state["_orig_mod.dec.w"]}
    assert exported(path, tmp_path, strip_prefixes=["_orig_mod."],
                    exclude=["*.b"]) == payload_json(want)


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs /proc/self/maps")
def test_mapped_flag_is_checked_against_the_real_mapping(tmp_path):
    from streamexport.sources import _file_mappings, _in_mapping
    path = tmp_path / "m.pt"
    torch.save({"w": torch.randn(4096)}, path)
    loaded = torch.load(path, mmap=True, weights_only=True)
    ranges = _file_mappings(str(path))
    assert ranges and _in_mapping(loaded["w"], ranges)
    assert not _in_mapping(torch.randn(4096), ranges)         # heap memory
    assert not _in_mapping(loaded["w"].clone(), ranges)       # a copy is not the mapping


def test_other_plain_metadata_types_load_as_stand_ins(tmp_path):
    import datetime
    import pathlib
    state = {"w": torch.randn(2)}
    path = tmp_path / "meta.pt"
    torch.save({"state_dict": state, "saved_at": datetime.datetime(2024, 5, 1, 12, 0),
                "elapsed": datetime.timedelta(seconds=90), "dir": pathlib.PurePosixPath("/runs/a"),
                "torch_version": torch.__version__, "span": slice(1, 5), "tags": frozenset({"a"})},
               path)
    with opened(path) as ck:
        assert_same_tensors(ck, state)


def test_concurrent_opens_in_threads_agree(tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor
    model = mlp()
    path = tmp_path / "lightning.ckpt"
    torch.save(lightning_checkpoint(monkeypatch, model), path)
    st_path = tmp_path / "m.safetensors"
    safetensors_torch.save_file(dict(model.state_dict()), st_path)

    def names(p):
        with open_checkpoint(p) as ck:
            return [(e.name, e.tensor().sum().item()) for e in ck.entries]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(names, [path, st_path] * 6))
    assert all(r == results[0] for r in results)


def test_timm_style_ema_copy_is_mentioned(tmp_path):
    path = tmp_path / "timm.pth"
    torch.save({"state_dict": {"w": torch.ones(1)}, "state_dict_ema": {"w": torch.zeros(1)},
                "optimizer": {"state": {}, "param_groups": []}, "epoch": 9}, path)
    with opened(path) as ck:
        assert [e.name for e in ck.entries] == ["w"]
        assert len(ck.warnings) == 1 and "--key state_dict_ema" in ck.warnings[0]


def test_extra_wrapper_choice_mentions_other_dicts_of_tensors(tmp_path):
    path = tmp_path / "m.pt"
    torch.save({"model": {"w": torch.ones(1)}, "ema_model": {"w": torch.zeros(1)}}, path)
    with opened(path) as ck:
        assert torch.equal(ck.entries[0].tensor(), torch.ones(1))
        assert len(ck.warnings) == 1 and "--key ema_model" in ck.warnings[0]


def test_parameters_that_require_grad_come_back_detached(tmp_path):
    from reference import reference_bytes
    path = tmp_path / "params.pt"
    torch.save({"w": torch.nn.Parameter(torch.randn(2, 3)),
                "b": torch.ones(2, requires_grad=True)}, path)
    with opened(path) as ck:
        for entry in ck.entries:
            t = entry.tensor()
            assert not t.requires_grad and type(t) is torch.Tensor
            assert entry.mapped
    assert exported(path, tmp_path) == reference_bytes(path)


class TaggedTensor(torch.Tensor):
    pass


def test_tensor_subclasses_are_handed_out_as_plain_tensors(tmp_path):
    path = tmp_path / "sub.pt"
    torch.save({"t": torch.arange(4.0).as_subclass(TaggedTensor), "w": torch.ones(1)}, path)
    with pytest.raises(CheckpointError, match=f"--safe-global {__name__}.TaggedTensor"):
        opened(path)
    with pytest.raises(CheckpointError, match="--unsafe-load"):
        opened(path, safe_globals=[f"{__name__}.TaggedTensor"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ck = open_checkpoint(path, unsafe_load=True)   # our own class: trusted here
    with ck:
        t = next(e for e in ck.entries if e.name == "t").tensor()
        assert type(t) is torch.Tensor and torch.equal(t, torch.arange(4.0))


def tensor_zoo():
    torch.manual_seed(6)
    base = torch.randn(6, 5)
    return {
        "param": torch.nn.Parameter(torch.randn(3, 2)),
        "grad": torch.randn(4, requires_grad=True),
        "transposed": base.t(),
        "slice": base[2:5, 1:4],
        "strided": base[:, ::2],
        "expanded": torch.randn(1, 3).expand(4, 3),
        "scalar": torch.tensor(7, dtype=torch.int64),
        "empty": torch.zeros(3, 0, 2),
        "bits": torch.tensor([[True, False], [False, True]]),
        "bf16": torch.randn(5).to(torch.bfloat16),
        "tied_a": base, "tied_b": base,
    }


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_export_of_a_zoo_of_tensor_forms_matches_the_contract(tmp_path, zip_format):
    from reference import reference_bytes
    path = tmp_path / "zoo.pt"
    torch.save(tensor_zoo(), path, _use_new_zipfile_serialization=zip_format)
    assert exported(path, tmp_path) == reference_bytes(path)
