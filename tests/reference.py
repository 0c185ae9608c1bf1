"""The reference the export is measured against: TorchLean's adapter, as DESIGN.md states it.

Kept deliberately naive (torch.load without mmap, tolist, json.dumps) so that it is obviously
what the adapter does; the export must give the same bytes.
"""
import json

import torch


def adapter_state_dict(obj, keep_prefix=False):
    """The tensors TorchLean's adapter takes from a loaded checkpoint, with their final names."""
    for wrapper in ("state_dict", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
            break
    tensors = {}
    for name, value in obj.items():
        if not isinstance(value, torch.Tensor):
            continue
        if not keep_prefix and name.startswith("module."):
            name = name[len("module."):]
        tensors[name] = value
    return tensors


def payload_json(tensors, no_meta=False):
    """json.dumps of the adapter's payload, compact and sorted: the output contract."""
    params = {name: t.tolist() for name, t in tensors.items()}
    payload = {"params": params}
    if not no_meta:
        payload["meta"] = {name: {"dtype": str(t.dtype), "shape": list(t.shape)}
                           for name, t in tensors.items()}
    return json.dumps(payload, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def reference_bytes(path, keep_prefix=False, no_meta=False):
    obj = torch.load(path, weights_only=True, map_location="cpu")
    return payload_json(adapter_state_dict(obj, keep_prefix), no_meta)
