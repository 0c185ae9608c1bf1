"""The bench's output checks: does a contender's JSON hold the checkpoint's values?

Each output is parsed (whole with orjson when it fits, else tensor by tensor with ijson) and
compared with the checkpoint's tensors as streamexport reads them (sorted names, ``module.``
stripped): names, meta, shapes, and the numbers -- bit for bit after widening to float64
("exact": what streamexport's exact text and a float64 upcast both give), or after rounding
each number back to the tensor's dtype ("shortest": what a shortest text must give back).
These checks are independent of streamexport's own formatter and verifier.
"""
import json
import os

import numpy as np

CHECK_IN_MEMORY_BYTES = 1536 * 2 ** 20       # outputs up to this size are parsed whole
CHECK_STREAM_MAX_TENSOR = 16 * 2 ** 20       # above it, per-tensor parsing needs too much memory


class CheckFailed(Exception):
    pass


def _reference_tensors(path):
    """The checkpoint's tensors, as streamexport reads them (sorted, module. stripped)."""
    from .sources import open_checkpoint
    return open_checkpoint(path)


def _iter_document(path, largest_tensor):
    """(meta, iterator of (name, parsed value)) of a JSON output, parsed in bounded memory
    when it is large."""
    size = os.path.getsize(path)
    if size <= CHECK_IN_MEMORY_BYTES:
        import orjson
        with open(path, "rb") as f:
            document = orjson.loads(f.read())
        if not isinstance(document, dict) or "params" not in document:
            raise CheckFailed("not a document with 'params'")
        return document.get("meta"), iter(document["params"].items())
    if largest_tensor > CHECK_STREAM_MAX_TENSOR:
        return None, None
    import ijson
    with open(path, "rb") as f:
        meta = next(ijson.items(f, "meta"), None)
    return meta, _stream_params(path)


def _stream_params(path):
    import ijson
    with open(path, "rb") as f:
        yield from ijson.kvitems(f, "params", use_float=True)


def round_bits(values, dtype):
    """Bit patterns of float64 ``values`` rounded (to nearest, ties even) to ``dtype``."""
    if dtype == "float64":
        return values.view(np.int64)
    if dtype == "float32":
        return values.astype(np.float32).view(np.int32)
    if dtype == "float16":
        return values.astype(np.float16).view(np.int16)
    if dtype == "bfloat16":
        # float64 -> bfloat16 in one rounding (no float32 step, which could round twice):
        # keep 7 of the 52 fraction bits, ties to even. Exact for bfloat16's normal range.
        bits = values.view(np.uint64)
        lsb = (bits >> np.uint64(45)) & np.uint64(1)
        bits = (bits + np.uint64((1 << 44) - 1) + lsb) & ~np.uint64((1 << 45) - 1)
        wide = bits.view(np.float64).astype(np.float32)   # exact: a bfloat16 value
        return (wide.view(np.uint32) >> np.uint32(16)).astype(np.uint16).view(np.int16)
    raise CheckFailed(f"no rounding for {dtype}")


def _tensor_bits(tensor, dtype):
    import torch
    if dtype == "bfloat16":
        return tensor.contiguous().view(torch.int16).numpy()
    if dtype in ("float8_e4m3fn", "float8_e5m2"):
        return None
    view = {"float64": np.int64, "float32": np.int32, "float16": np.int16}[dtype]
    return tensor.contiguous().numpy().view(view)


def _compare_tensor(name, entry, value, mode):
    """Raise CheckFailed unless ``value`` (parsed JSON) holds ``entry``'s values."""
    import torch
    tensor = entry.tensor()
    if tensor.numel() == 0:
        if value != tensor.tolist():
            raise CheckFailed(f"{name}: empty tensor written as {str(value)[:40]}")
        return
    try:
        array = np.asarray(value)
    except ValueError as exc:
        raise CheckFailed(f"{name}: nested lists do not have the tensor's shape ({exc})") from None
    if array.shape != tuple(tensor.shape):
        raise CheckFailed(f"{name}: shape {array.shape} != {tuple(tensor.shape)}")
    dtype = entry.dtype
    if not tensor.is_floating_point():
        expected = tensor.numpy()
        if not np.array_equal(array.astype(expected.dtype), expected):
            raise CheckFailed(f"{name}: integer/bool values differ")
        return
    parsed = np.ascontiguousarray(array, dtype=np.float64).reshape(-1)
    if mode == "exact" or dtype == "float64" or dtype.startswith("float8"):
        got = parsed.view(np.int64)
        expected = tensor.to(torch.float64).contiguous().reshape(-1).numpy().view(np.int64)
    else:
        got = round_bits(parsed, dtype)
        expected = _tensor_bits(tensor.reshape(-1), dtype)
    bad = np.flatnonzero(got != expected)
    if bad.size:
        first = int(bad[0])
        want = float(tensor.reshape(-1)[first])
        raise CheckFailed(f"{name}: {bad.size} values differ, the first at flat index {first}: "
                          f"wrote {parsed[first]!r}, tensor holds {want!r}")


def check_output(path, dataset, mode):
    """Compare an output with the checkpoint's values; a short description or CheckFailed.

    ``mode`` "exact": every number equals the element widened to float64, bit for bit (what
    streamexport's exact text and a float64 upcast both give). "shortest": every number,
    rounded to the tensor's dtype, gives the element's bits back.
    """
    meta, params = _iter_document(path, dataset["largest_tensor"])
    if params is None:
        return "skipped: output too large to parse here (see verify)"
    with _reference_tensors(dataset["path"]) as checkpoint:
        entries = checkpoint.entries
        seen = 0
        for entry, (name, value) in zip(entries, params):
            if name != entry.name:
                raise CheckFailed(f"tensor #{seen}: name {name!r}, expected {entry.name!r}")
            expected_meta = {"dtype": entry.torch_dtype, "shape": list(entry.shape)}
            if meta is not None and meta.get(name) != expected_meta:
                raise CheckFailed(f"{name}: meta {meta.get(name)} != {expected_meta}")
            _compare_tensor(name, entry, value, mode)
            seen += 1
        rest = sum(1 for _ in params)
        if seen != len(entries) or rest:
            raise CheckFailed(f"{seen + rest} tensors written, the checkpoint has {len(entries)}")
    return "exact values" if mode == "exact" else "values at dtype"


def check_contract(reference_path, dataset):
    """Byte-compare export's output with json.dumps of TorchLean's payload (small sets only)."""
    import torch
    state = torch.load(dataset["path"], weights_only=True)
    if isinstance(state, dict):
        for key in ("state_dict", "model_state_dict"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    meta, params = {}, {}
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):
            continue
        name = name[len("module."):] if name.startswith("module.") else name
        meta[name] = {"dtype": str(tensor.dtype), "shape": list(tensor.shape)}
        params[name] = tensor.tolist()
    expected = json.dumps({"meta": meta, "params": params}, sort_keys=True,
                          separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    del params
    with open(reference_path, "rb") as f:
        return f.read() == expected
