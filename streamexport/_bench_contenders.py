"""The contenders of ``python -m streamexport.bench``, one per child process.

The bench starts this file as a plain script (not as ``streamexport._bench_contenders``), so
a contender that does not need streamexport or torch -- the bare ijson loop -- does not pay
for importing them, and the peak RSS the parent reads with ``wait4`` is the contender's own:

    python -c BOOT CONTENDER CONFIG_JSON

``CONFIG_JSON`` holds ``src``, ``dst``, ``runs``, ``result`` and the contender's options.
With ``check_fds`` (two pipe ends), the child first makes one untimed run, tells the
parent on the first pipe, and waits on the second: the parent checks that run's output
before anything is timed, and answers ``go`` (or ``stop``). Then the child runs the work
``runs`` times, timing only the work (from opening the checkpoint to closing the output;
interpreter start and imports are timed apart), and writes ``{"times": [...],
"output_bytes": N, "import_seconds": s, "info": {...}, "first": {...}}`` to ``result``.
Each run removes the previous run's output first; the last one is left at ``dst``.

Every contender except streamexport is written the way a user would write it, with the
libraries a user would pick; none is handicapped on purpose.
"""
import json
import os
import sys
import time


def _remove(path):
    if path and path != os.devnull:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def _output_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


# ---- contenders ----------------------------------------------------------------------

def _streamexport(cfg):
    import streamexport

    def run(first=False):
        report = streamexport.export(cfg["src"], cfg["dst"], float_format=cfg["float_format"],
                                     threads=cfg["threads"], fsync=cfg.get("fsync", True))
        return {"elements": report.elements, "bytes_written": report.bytes_written,
                "tensors": report.tensors, "report_seconds": report.seconds}
    return run


def _torchlean_state_dict(obj, torch):
    """TorchLean's unwrapping, as its document describes it."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                return obj[key]
    return obj


def _torchlean(cfg):
    """TorchLean's adapter: torch.load, tolist, json.dump(indent=2, sort_keys=True)."""
    import torch

    def run(first=False):
        state = _torchlean_state_dict(torch.load(cfg["src"], weights_only=True), torch)
        meta, params = {}, {}
        for name, value in state.items():
            if not isinstance(value, torch.Tensor):
                continue
            if name.startswith("module."):
                name = name[len("module."):]
            meta[name] = {"dtype": str(value.dtype), "shape": list(value.shape)}
            params[name] = value.tolist()
        with open(cfg["dst"], "w") as out:
            json.dump({"meta": meta, "params": params}, out, indent=2, sort_keys=True)
        return {}
    return run


def _orjson_stream(cfg):
    """What a user who knows orjson writes: mmap the checkpoint, one orjson call per tensor.

    ``upcast`` (default): each tensor widened to float64 first, so the values written are
    the exact ones (the same numbers as streamexport's exact mode). Otherwise each tensor at
    its own precision (bfloat16/float16 widened to float32, which numpy and orjson know):
    orjson then writes float32's shortest text, comparable to streamexport's shortest mode.
    """
    import numpy as np
    import orjson
    import torch

    upcast = cfg.get("upcast", True)
    option = orjson.OPT_SERIALIZE_NUMPY

    def as_array(tensor):
        if tensor.is_floating_point():
            if upcast:
                tensor = tensor.to(torch.float64)
            elif tensor.dtype in (torch.bfloat16, torch.float16):
                tensor = tensor.to(torch.float32)
        return np.ascontiguousarray(tensor.numpy())

    def run(first=False):
        state = _torchlean_state_dict(
            torch.load(cfg["src"], mmap=True, weights_only=True, map_location="cpu"), torch)
        tensors = {}
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[name[len("module."):] if name.startswith("module.") else name] = value
        names = sorted(tensors)
        meta = {name: {"dtype": str(tensors[name].dtype), "shape": list(tensors[name].shape)}
                for name in names}
        with open(cfg["dst"], "wb") as out:
            out.write(b'{"meta":' + orjson.dumps(meta, option=orjson.OPT_SORT_KEYS)
                      + b',"params":{')
            for position, name in enumerate(names):
                out.write((b"," if position else b"") + orjson.dumps(name) + b":")
                tensor = tensors[name]
                if tensor.dim() == 0:     # a bare number, as tolist() gives it
                    out.write(orjson.dumps(tensor.item()))
                else:
                    out.write(orjson.dumps(as_array(tensor), option=option))
            out.write(b"}}")
        return {}
    return run


def _verify(cfg):
    import streamexport

    verify = getattr(streamexport, "verify", None)
    if verify is None:
        from streamexport.verify import verify

    def run(first=False):
        report = verify(cfg["input"], against=cfg["src"])
        info = {"ok": bool(report.ok), "failures": len(report.failures)}
        for field in ("tensors", "elements", "backend", "float_format"):
            info[field] = getattr(report, field, None)
        if report.failures:
            info["first_failure"] = str(report.failures[0])
        return info
    return run


def _ijson(cfg):
    """The floor for any ijson-based reader: parse every event, do nothing with it."""
    import ijson

    def run(first=False):
        count_numbers = first     # counted in the untimed run only: the timed loop stays bare
        numbers = 0
        with open(cfg["input"], "rb") as f:
            if count_numbers:
                for event, _ in ijson.basic_parse(f, use_float=True):
                    if event == "number":
                        numbers += 1
            else:
                for _ in ijson.basic_parse(f, use_float=True):
                    pass
        return {"numbers": numbers, "backend": ijson.backend} if count_numbers else \
            {"backend": ijson.backend}
    return run


def _baseline(cfg):
    """Interpreter plus the imports every torch-based contender pays for."""
    import numpy  # noqa: F401
    import orjson  # noqa: F401
    import torch  # noqa: F401

    import streamexport  # noqa: F401

    def run(first=False):
        return {}
    return run


CONTENDERS = {
    "export": _streamexport,
    "torchlean": _torchlean,
    "orjson-stream": _orjson_stream,
    "verify": _verify,
    "ijson": _ijson,
    "baseline": _baseline,
}


def peak_rss():
    """This process's own peak resident memory in bytes (VmHWM), None where unknown.

    Not ``getrusage``: on Linux a child's ru_maxrss starts from the RSS of the process it
    was forked from (the bench, with torch loaded), which would hide small contenders.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def main(argv):
    kind, cfg = argv[0], json.loads(argv[1])
    started = time.perf_counter()
    run = CONTENDERS[kind](cfg)
    import_seconds = time.perf_counter() - started
    dst = cfg.get("dst")
    result = {"import_seconds": import_seconds, "times": [], "info": {}}
    if cfg.get("check_fds"):
        # One untimed first run whose output the parent checks before any timed run starts.
        to_parent, from_parent = cfg["check_fds"]
        _remove(dst)
        begin = time.perf_counter()
        info = run(first=True) or {}
        first = {"seconds": time.perf_counter() - begin, "info": info,
                 "output_bytes": _output_size(dst) if dst else 0, "peak_rss": peak_rss()}
        result["first"] = first
        with os.fdopen(to_parent, "w") as out:
            out.write(json.dumps(first) + "\n")
        with os.fdopen(from_parent) as answer:
            if answer.readline().strip() != "go":
                result["stopped"] = True
                cfg["runs"] = 0
    for _ in range(cfg.get("runs", 1)):
        _remove(dst)
        begin = time.perf_counter()
        result["info"] = run() or {}
        result["times"].append(time.perf_counter() - begin)
    result["output_bytes"] = _output_size(dst) if dst else 0
    result["peak_rss"] = peak_rss()
    with open(cfg["result"], "w") as out:
        json.dump(result, out)


if __name__ == "__main__":
    main(sys.argv[1:])
