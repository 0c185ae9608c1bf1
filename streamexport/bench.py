"""``python -m streamexport.bench``: streamexport against what users would pick instead.

Two sections, both printed as tables (``--json FILE`` keeps every figure):

* **checkpoints** -- synthetic LLM-shaped checkpoints (an embedding, blocks of attention and
  MLP weights, norms; float32 and bfloat16; fixed seed; in a temporary directory removed
  afterwards), or the checkpoints given as arguments. Every contender runs in its own child
  process, which reports its own peak RSS (VmHWM): streamexport's export (exact and
  shortest, one thread and all threads), TorchLean's adapter as its document describes it
  (``torch.load``, ``tolist``, ``json.dump(indent=2, sort_keys=True)``; on a smaller
  checkpoint, stated in the table, since it runs at about 0.4 M elements/s), a
  ``torch.load(mmap=True)`` + orjson-per-tensor script (float64 upcast, and own precision),
  streamexport's verifier and a bare ijson loop over the same file. Before any contender is
  timed, a first run's output is parsed and checked against the checkpoint's values (exact,
  or after rounding to the tensor's dtype for the shortest texts); streamexport's outputs
  with several threads must be byte-identical to one thread's.
* **formatter** -- in one process, 4M-element arrays of normal(0, 0.02) weights:
  ``streamexport.dumps`` against ``orjson.dumps(..., option=OPT_SERIALIZE_NUMPY)`` on the same
  values (float32 exact also on the paths of CPUs without AVX-512: AVX2, and scalar), and
  export of a float32 checkpoint to /dev/null with 2 threads against 1.

Timings are the work only (load to closed output), not interpreter start or imports.
No figure here is a pass/fail test; the targets of issues 3 and 6 are reported as met or not.
"""
import argparse
import datetime
import filecmp
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from ._bench_check import CheckFailed, check_contract, check_output, round_bits
from ._bench_report import TARGETS, evaluate_targets, human_bytes, render
from ._cpus import usable_cpu_count

__all__ = ["main", "render", "evaluate_targets", "check_output", "CheckFailed", "TARGETS"]

# ---- defaults: `python -m streamexport.bench` with no argument stays under 2 minutes ---

DEFAULT_SIZE = "2MB"
DEFAULT_DTYPES = "float32,bfloat16"
DEFAULT_REPEAT = 3
DEFAULT_ADAPTER_SIZE = "2MB"
DEFAULT_FORMATTER_ELEMENTS = 4 * 2 ** 20
# Large enough that the fixed start-up (torch.load, the zip's structure; ~20 ms, the same for
# any thread count) does not hide how the formatting and writing scale: at 128MB it was ~13%
# of the 2-thread time, and six runs gave 1.57-1.83x where 256MB gave 1.72-2.08x.
DEFAULT_EXPORT_SECTION_SIZE = "256MB"
FORMATTER_MIN_REPEAT = 5
WEIGHT_STD = 0.02
BLOCKS = 8                                   # transformer blocks of a synthetic checkpoint
CONTRACT_CHECK_MAX_ELEMENTS = 4 * 2 ** 20    # byte-compare with json.dumps(payload) up to this

_UNITS = {"": 1, "B": 1, "K": 2 ** 10, "KB": 2 ** 10, "KIB": 2 ** 10, "M": 2 ** 20, "MB": 2 ** 20,
          "MIB": 2 ** 20, "G": 2 ** 30, "GB": 2 ** 30, "GIB": 2 ** 30}
_ITEMSIZE = {"float32": 4, "bfloat16": 2, "float16": 2, "float64": 8}


def parse_size(text):
    """'2GB' -> 2147483648 (binary units: KB = 1024 B, MB = 2**20 B, GB = 2**30 B)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(text))
    if not match or match.group(2).upper() not in _UNITS:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 64MB, 0.5GB, 2GB)")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def _log(args, message):
    if not args.quiet:
        sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
        sys.stderr.flush()


# ---- the machine -----------------------------------------------------------------------

def machine_info():
    info = {"platform": platform.platform(), "cpus": os.cpu_count(),
            "usable_cpus": usable_cpu_count(),
            "cpu_model": platform.processor() or platform.machine(), "memory_bytes": None}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    info["memory_bytes"] = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        info["load_average"] = list(os.getloadavg())
    except OSError:
        pass
    return info


def versions():
    import ijson
    import orjson
    import torch

    import streamexport
    from streamexport import formatter
    found = {"python": platform.python_version(), "torch": torch.__version__,
             "numpy": np.__version__, "orjson": orjson.__version__,
             "ijson": f"{ijson.__version__} ({ijson.backend})",
             "streamexport": getattr(streamexport, "__version__", "?"),
             "formatter": formatter.IMPLEMENTATION}
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        commit = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=10)
        if commit.returncode == 0:
            found["git"] = commit.stdout.strip()
            dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--", "../csrc",
                                    "."], capture_output=True, text=True, timeout=10)
            changed = [line[3:] for line in dirty.stdout.splitlines() if line[:2] != "??"]
            if changed:
                found["git"] += f" + uncommitted changes in {', '.join(sorted(changed))}"
    except (OSError, subprocess.SubprocessError):
        pass
    return found


# ---- synthetic checkpoints ---------------------------------------------------------------

def llm_shapes(elements, big_tensor=0):
    """Names and shapes of a LLaMA-like state_dict of about ``elements`` elements.

    hidden size d, vocabulary 8d (or, with ``big_tensor``, an embedding of at least that many
    elements), per block: 4 attention projections d x d, a gated MLP (gate/up f x d, down
    d x f, f ~ 8d/3) and two norms; a final norm. d is the largest that leaves room for
    about BLOCKS blocks; the number of blocks then fills the rest.
    """
    def per_block(d):
        f = _ffn(d)
        return 4 * d * d + 3 * d * f + 2 * d

    def fits(d):    # BLOCKS blocks (and the 8d x d embedding) within the rest
        return per_block(d) * BLOCKS + (0 if big_tensor else 8 * d * d) <= rest

    rest = max(elements - big_tensor, 64)
    d = 8
    while fits(d * 2):
        d *= 2
    step = 64 if d >= 256 else 8
    while fits(d + step):
        d += step
    vocab = -(-big_tensor // d) if big_tensor else 8 * d
    blocks = max(1, (elements - vocab * d - d) // per_block(d))
    f = _ffn(d)
    shapes = [("model.embed_tokens.weight", (vocab, d))]
    for i in range(blocks):
        p = f"model.layers.{i}."
        shapes += [(p + "input_layernorm.weight", (d,)),
                   (p + "self_attn.q_proj.weight", (d, d)), (p + "self_attn.k_proj.weight", (d, d)),
                   (p + "self_attn.v_proj.weight", (d, d)), (p + "self_attn.o_proj.weight", (d, d)),
                   (p + "post_attention_layernorm.weight", (d,)),
                   (p + "mlp.gate_proj.weight", (f, d)), (p + "mlp.up_proj.weight", (f, d)),
                   (p + "mlp.down_proj.weight", (d, f))]
    shapes.append(("model.norm.weight", (d,)))
    return shapes


def _ffn(d):
    return max(8, (8 * d // 3 + 7) // 8 * 8)


def make_checkpoint(path, nbytes, dtype, seed=0, big_tensor_bytes=0):
    """Write a synthetic checkpoint (torch zip format) and describe it."""
    import torch
    itemsize = _ITEMSIZE[dtype]
    shapes = llm_shapes(max(1, nbytes // itemsize), big_tensor_bytes // itemsize)
    generator = torch.Generator().manual_seed(seed)
    torch_dtype = getattr(torch, dtype)
    state = {}
    for name, shape in shapes:
        values = torch.randn(shape, generator=generator, dtype=torch.float32)
        values.mul_(WEIGHT_STD)
        if name.endswith("norm.weight"):
            values.add_(1.0)
        state[name] = values if torch_dtype == torch.float32 else values.to(torch_dtype)
        del values
    torch.save(state, path)
    described = describe_state(state, path)
    del state
    return described


def describe_state(state, path):
    numels = [int(t.numel()) for t in state.values()]
    dtypes = sorted({str(t.dtype).replace("torch.", "") for t in state.values()})
    return {"path": path, "file_bytes": os.path.getsize(path),
            "data_bytes": sum(int(t.numel()) * t.element_size() for t in state.values()),
            "tensors": len(numels), "elements": sum(numels),
            "largest_tensor": max(numels) if numels else 0, "dtype": "+".join(dtypes)}


def describe_checkpoint(path):
    """Describe a checkpoint given on the command line (any source streamexport reads)."""
    from .sources import open_checkpoint
    with open_checkpoint(path) as checkpoint:
        numels = [math.prod(entry.shape) for entry in checkpoint.entries]
        itemsizes = [_itemsize(entry.dtype) for entry in checkpoint.entries]
        dtypes = sorted({entry.torch_dtype.replace("torch.", "") for entry in checkpoint.entries})
        torch_file = os.path.isfile(path) and not path.endswith(".safetensors")
    file_bytes = _path_bytes(path)
    return {"path": path, "file_bytes": file_bytes,
            "data_bytes": sum(n * s for n, s in zip(numels, itemsizes)),
            "tensors": len(numels), "elements": sum(numels),
            "largest_tensor": max(numels) if numels else 0, "dtype": "+".join(dtypes),
            "torch_file": torch_file}


def _path_bytes(path):
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(root, name))
                   for root, _, names in os.walk(path) for name in names)
    return os.path.getsize(path)


def _itemsize(dtype_name):
    from .formatter import ITEMSIZE
    return ITEMSIZE.get(dtype_name, 1)


# ---- contenders --------------------------------------------------------------------------

CONTENDER_HELP = [
    ("export-exact", "streamexport export, exact floats (the default), per --threads"),
    ("export-shortest", "streamexport export --float-format shortest, per --threads"),
    ("export-fsync", "streamexport export, exact, all threads, with fsync as its CLI does"
                     " (the other rows, like every other writer here, leave the data in the page cache)"),
    ("torchlean", "TorchLean's adapter: torch.load, tolist, json.dump(indent=2, sort_keys=True);"
                  " on a checkpoint of --adapter-size"),
    ("orjson-f64", "torch.load(mmap=True) + orjson.dumps per tensor, upcast to float64"
                   " (the exact values)"),
    ("orjson-native", "torch.load(mmap=True) + orjson.dumps per tensor at own precision"
                      " (bfloat16/float16 as float32; float32's shortest text)"),
    ("verify", "streamexport.verify(output, against=checkpoint) on export's output"),
    ("ijson", "a bare ijson loop over export's output: for _ in ijson.basic_parse(f, use_float=True)"),
    ("baseline", "interpreter + imports of torch, numpy, orjson, streamexport (RSS floor)"),
    ("formatter", "section: streamexport.dumps vs orjson.dumps on 4M-element arrays in one process,"
                  " and export to /dev/null 2 threads vs 1"),
]
CONTENDER_NAMES = [name for name, _ in CONTENDER_HELP]


class Contender:
    def __init__(self, key, label, kind, mode, options=None, threads=None, reads=False):
        self.key = key            # the --only name
        self.label = label
        self.kind = kind          # the child's contender (see _bench_contenders.CONTENDERS)
        self.mode = mode          # "exact", "shortest" (values at the dtype) or "read"
        self.options = dict(options or {})
        self.threads = threads
        self.reads = reads        # reads export's output instead of writing one

    @property
    def ident(self):
        return self.key if self.threads is None else f"{self.key}@{self.threads}"


def plan_contenders(args):
    wanted = set(args.only)
    plan = []
    for fmt in ("exact", "shortest"):
        key = f"export-{fmt}"
        if key in wanted:
            for threads in args.threads:
                plan.append(Contender(key, f"streamexport {fmt}", "export", fmt,
                                      {"float_format": fmt, "threads": threads,
                                       "fsync": args.fsync}, threads))
    if "export-fsync" in wanted:
        threads = max(args.threads)
        plan.append(Contender("export-fsync", "streamexport exact + fsync", "export", "exact",
                              {"float_format": "exact", "threads": threads, "fsync": True},
                              threads))
    if "torchlean" in wanted:
        plan.append(Contender("torchlean", "TorchLean adapter", "torchlean", "exact"))
    if "orjson-f64" in wanted:
        plan.append(Contender("orjson-f64", "mmap + orjson, float64", "orjson-stream", "exact",
                              {"upcast": True}))
    if "orjson-native" in wanted:
        plan.append(Contender("orjson-native", "mmap + orjson, own precision", "orjson-stream",
                              "shortest", {"upcast": False}))
    if "verify" in wanted:
        plan.append(Contender("verify", "streamexport.verify", "verify", "read", reads=True))
    if "ijson" in wanted:
        plan.append(Contender("ijson", "bare ijson loop", "ijson", "read", reads=True))
    return plan


# ---- child processes -------------------------------------------------------------------

_BOOT = """\
import importlib.util, sys
sys.path.insert(0, {parent!r})
spec = importlib.util.spec_from_file_location("_se_bench_child", {file!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
module.main(sys.argv[1:])
"""


def run_child(kind, config, workdir, check=None):
    """Run one contender in a fresh interpreter; its figures plus its own peak RSS.

    With ``check`` (a function of the first run's figures returning a check result), the
    child makes one untimed run first and waits while ``check`` looks at its output; the
    timed runs follow only if the check passed.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    boot = _BOOT.format(parent=os.path.dirname(here), file=os.path.join(here, "_bench_contenders.py"))
    fd, result_path = tempfile.mkstemp(prefix="result-", suffix=".json", dir=workdir)
    os.close(fd)
    config = dict(config, result=result_path)
    pipes = ()
    if check is not None:
        up_read, up_write = os.pipe()
        down_read, down_write = os.pipe()
        pipes = (up_write, down_read)
        config["check_fds"] = list(pipes)
    stderr_path = result_path + ".stderr"
    checked = None
    started = time.perf_counter()
    with open(stderr_path, "wb") as stderr:
        child = subprocess.Popen([sys.executable, "-c", boot, kind, json.dumps(config)],
                                 cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=stderr, pass_fds=pipes)
        if check is not None:
            for end in pipes:
                os.close(end)
            with os.fdopen(up_read) as up, os.fdopen(down_write, "w") as down:
                line = up.readline()
                try:
                    if line:
                        checked = check(json.loads(line))
                finally:
                    try:
                        down.write("go\n" if checked and checked["status"] != "MISMATCH"
                                   else "stop\n")
                        down.flush()
                    except BrokenPipeError:
                        pass
        _, status, usage = os.wait4(child.pid, 0)
        returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    try:
        with open(stderr_path, "rb") as f:
            errors = f.read().decode("utf-8", "replace")
        if returncode != 0:
            tail = " | ".join(errors.strip().splitlines()[-3:])
            return {"error": f"exit {returncode}: {tail}", "check": checked}
        with open(result_path) as f:
            result = json.load(f)
    finally:
        for path in (result_path, stderr_path):
            if os.path.exists(path):
                os.remove(path)
    if not result.get("peak_rss"):   # no /proc: wait4's figure, an upper bound (see the child)
        result["peak_rss"] = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
        result["peak_rss_source"] = "wait4"
    result["wall_seconds"] = wall
    result["check"] = checked
    return result


# ---- the checkpoint section ----------------------------------------------------------------

def _stats(times):
    return {"min": min(times), "median": statistics.median(times), "max": max(times)}


def run_contender(args, contender, dataset, workdir, reference, kept):
    """Check one contender's output, then time it. Returns its result row."""
    row = {"contender": contender.ident, "key": contender.key, "label": contender.label,
           "threads": contender.threads, "dataset": dataset["id"], "mode": contender.mode,
           "elements": dataset["elements"]}
    config = dict(contender.options, src=dataset["path"])
    if contender.reads:
        if reference is None:
            row["error"] = "skipped: no export output to read"
            return row
        config["input"] = reference
        row["input_bytes"] = os.path.getsize(reference)
        config["dst"] = None
    else:
        config["dst"] = os.path.join(workdir, f"out-{contender.ident.replace('@', '-')}.json")
    runs = {"torchlean": args.adapter_repeat, "verify": args.reader_repeat,
            "ijson": args.reader_repeat}.get(contender.key, args.repeat)
    if runs == 0 and not args.check:
        runs = 1
    check = None
    if args.check:
        def check(first):
            _log(args, f"  checking the first run of {contender.ident}")
            return _check_first_run(args, contender, dataset, config, first, reference, kept)
    _log(args, f"  {contender.ident}: {'a checked first run, then ' if check else ''}"
               f"{runs} timed run{'s' if runs != 1 else ''}"
               + (" (the checked run is timed)" if runs == 0 else ""))
    timed = run_child(contender.kind, dict(config, runs=runs), workdir, check)
    row["peak_rss"] = timed.get("peak_rss")
    row["check"] = timed.get("check") or {"status": "not checked" + (
        " (--no-check)" if not args.check else " (the first run failed)")}
    if "first" in timed:
        row["check_run_seconds"] = timed["first"]["seconds"]
    if "error" in timed:
        row["error"] = timed["error"]
        return row
    if timed.get("stopped"):
        row["error"] = "not timed: its output failed the check"
        return row
    times = timed["times"]
    output_bytes = timed["output_bytes"]
    if not times:      # --adapter-repeat 0: the one (checked) run is the measurement
        times = [timed["first"]["seconds"]]
        output_bytes = timed["first"]["output_bytes"]
        row["timed_the_checked_run"] = True
    else:
        row["_again"] = (config, runs)      # for run_again, in later rounds
    row.update(import_seconds=timed["import_seconds"], info=timed.get("info", {}), rounds=1)
    _set_times(row, dataset, times, output_bytes)
    if not contender.reads and config["dst"] not in kept.values():
        _remove_quietly(config["dst"])
    return row


def run_again(args, contender, dataset, workdir, row, kept):
    """One more round of a contender's timed runs, in a new process, pooled into its row:
    with ``--rounds``, every contender is timed in each round, so a busy spell on a shared
    machine falls on all of them rather than on one."""
    again = row.get("_again")
    if again is None:
        return
    config, runs = again
    _log(args, f"  {contender.ident}: round {row['rounds'] + 1}, {runs} timed run"
               f"{'s' if runs != 1 else ''}")
    timed = run_child(contender.kind, dict(config, runs=runs), workdir)
    if "error" in timed:
        row["error"] = f"round {row['rounds'] + 1}: {timed['error']}"
        return
    row["rounds"] += 1
    row["peak_rss"] = max(row.get("peak_rss") or 0, timed.get("peak_rss") or 0)
    _set_times(row, dataset, row["times"] + timed["times"], timed["output_bytes"])
    if not contender.reads and config["dst"] not in kept.values():
        _remove_quietly(config["dst"])


def _set_times(row, dataset, times, output_bytes):
    row.update(seconds=_stats(times), times=times)
    median = row["seconds"]["median"]
    row["elements_per_s"] = dataset["elements"] / median if median > 0 else None
    if "input_bytes" in row:
        row["mb_per_s"] = row["input_bytes"] / median / 2 ** 20 if median > 0 else None
    else:
        row["output_bytes"] = output_bytes
        row["mb_per_s"] = output_bytes / median / 2 ** 20 if median > 0 else None


def _check_first_run(args, contender, dataset, config, first, reference, kept):
    """Check the output of a contender's first run; keep export's outputs for later rows."""
    try:
        if contender.kind == "export":
            fmt = contender.options["float_format"]
            mine = config["dst"]
            if fmt in kept:
                same = filecmp.cmp(kept[fmt], mine, shallow=False)
                if not same:
                    raise CheckFailed(f"output differs from {fmt} with {kept_threads(kept, fmt)}")
                _remove_quietly(mine)
                return {"status": "ok", "detail": "byte-identical to 1 thread"
                        if kept_threads(kept, fmt) == "1 thread" else "byte-identical"}
            detail = check_output(mine, dataset, fmt)
            kept[fmt] = mine
            kept[fmt + "@threads"] = contender.threads
            if fmt == "exact" and dataset["elements"] <= CONTRACT_CHECK_MAX_ELEMENTS \
                    and dataset.get("torch_file", True):
                if not check_contract(mine, dataset):
                    raise CheckFailed("not byte-identical to json.dumps(payload)")
                detail += "; bytes = json.dumps(payload)"
            return {"status": "skipped" if detail.startswith("skipped") else "ok",
                    "detail": detail}
        if contender.kind == "verify":
            info = first["info"]
            if not info.get("ok"):
                raise CheckFailed(f"verify found {info.get('failures')} failures, the first: "
                                  f"{info.get('first_failure')}")
            if info.get("elements") not in (None, dataset["elements"]):
                raise CheckFailed(f"verify checked {info['elements']:,} elements of "
                                  f"{dataset['elements']:,}")
            return {"status": "ok", "detail": f"verify passed ({info.get('elements') or 0:,} "
                                              f"elements against the checkpoint)"}
        if contender.kind == "ijson":
            numbers = first["info"].get("numbers")
            expected = dataset["elements"] + dataset.get("shape_numbers", 0)
            if numbers != expected:
                raise CheckFailed(f"read {numbers} numbers, expected {expected}")
            return {"status": "ok", "detail": f"read all {numbers:,} numbers"}
        detail = check_output(config["dst"], dataset, contender.mode)
        _remove_quietly(config["dst"])
        return {"status": "ok" if not detail.startswith("skipped") else "skipped",
                "detail": detail + (" (= export exact)" if contender.mode == "exact" else
                                    " (= export shortest)")}
    except CheckFailed as exc:
        return {"status": "MISMATCH", "detail": str(exc)}
    except Exception as exc:   # a check that cannot run is no pass: nothing is timed
        return {"status": "MISMATCH", "detail": f"the check itself failed: "
                                                f"{type(exc).__name__}: {exc}"}


def kept_threads(kept, fmt):
    threads = kept.get(fmt + "@threads")
    return f"{threads} thread{'s' if threads != 1 else ''}"


def _remove_quietly(path):
    try:
        if path:
            os.remove(path)
    except OSError:
        pass


def run_dataset(args, dataset, plan, workdir, results):
    _log(args, f"dataset {dataset['id']}: {dataset['tensors']} tensors, "
               f"{dataset['elements']:,} elements, {human_bytes(dataset['file_bytes'])}")
    kept = {}
    rows = []
    try:
        for contender in plan:
            reference = kept.get("exact")
            row = run_contender(args, contender, dataset, workdir, reference, kept)
            rows.append((contender, row))
            results.append(row)
            if "error" in row:
                _log(args, f"  {contender.ident}: {row['error']}")
        for _ in range(1, args.rounds):
            for contender, row in rows:
                if "error" not in row:
                    run_again(args, contender, dataset, workdir, row, kept)
    finally:
        for _, row in rows:
            row.pop("_again", None)
        for key, path in kept.items():
            if not key.endswith("@threads"):
                _remove_quietly(path)


def build_datasets(args, workdir):
    """The checkpoints to bench: (dataset, contenders) pairs, the adapter's smaller ones too."""
    plan = plan_contenders(args)
    adapter = [c for c in plan if c.key == "torchlean"]
    main_plan = [c for c in plan if c.key != "torchlean"]
    export_exact = [c for c in plan if c.key == "export-exact"]
    jobs = []
    if args.checkpoints:
        for path in args.checkpoints:
            dataset = describe_checkpoint(path)
            dataset.update(id=os.path.basename(os.path.normpath(path)), synthetic=False)
            contenders = list(main_plan)
            if not dataset.get("torch_file"):
                contenders = [c for c in contenders if c.kind not in ("orjson-stream",)]
            if adapter and dataset.get("torch_file") and dataset["file_bytes"] <= args.adapter_size:
                contenders.append(adapter[0])
            elif adapter:
                dataset["adapter_note"] = (f"TorchLean adapter not run: checkpoint larger than "
                                           f"--adapter-size {human_bytes(args.adapter_size)}")
            jobs.append((dataset, contenders))
        return jobs
    for size, big in args.size:
        for dtype in args.dtype:
            jobs.append((("synthetic", dtype, size, big), main_plan
                         + (adapter if size <= args.adapter_size else [])))
            if adapter and size > args.adapter_size:
                jobs.append((("synthetic", dtype, args.adapter_size, 0), export_exact + adapter))
    # the adapter's dataset for each dtype is made once, even with several sizes
    unique, seen = [], {}
    for spec, contenders in jobs:
        if spec in seen:
            for c in contenders:
                if c not in seen[spec]:
                    seen[spec].append(c)
            continue
        seen[spec] = list(contenders)
        unique.append(spec)
    return [(spec, seen[spec]) for spec in unique]


def materialize(args, spec, workdir):
    """Create a synthetic checkpoint on disk (spec is a tuple), or return a described one."""
    if isinstance(spec, dict):
        return spec
    _, dtype, size, big = spec
    name = f"synthetic-{dtype}-{human_bytes(size).replace(' ', '')}"
    if big:
        name += f"-big{human_bytes(big).replace(' ', '')}"
    path = os.path.join(workdir, name + ".pt")
    started = time.perf_counter()
    dataset = make_checkpoint(path, size, dtype, seed=args.seed, big_tensor_bytes=big)
    dataset.update(id=f"{dtype} {human_bytes(dataset['data_bytes'])}"
                      + (f" (one {human_bytes(big)} tensor)" if big else ""),
                   synthetic=True, requested_bytes=size, torch_file=True,
                   seconds_to_make=time.perf_counter() - started)
    dataset["shape_numbers"] = sum(len(s) for _, s in llm_shapes(
        max(1, size // _ITEMSIZE[dtype]), big // _ITEMSIZE[dtype]))
    _log(args, f"made {dataset['id']} in {dataset['seconds_to_make']:.1f} s")
    return dataset


def checkpoint_section(args, workdir):
    jobs = build_datasets(args, workdir)
    datasets, results = [], []
    for spec, contenders in jobs:
        dataset = materialize(args, spec, workdir)
        if "shape_numbers" not in dataset:
            dataset["shape_numbers"] = _shape_numbers(dataset["path"])
        try:
            run_dataset(args, dataset, contenders, workdir, results)
        finally:
            if dataset.get("synthetic"):
                _remove_quietly(dataset["path"])
        datasets.append({k: v for k, v in dataset.items() if k != "path" or not dataset["synthetic"]})
    add_ratios(datasets, results)
    return datasets, results


def _shape_numbers(path):
    from .sources import open_checkpoint
    with open_checkpoint(path) as checkpoint:
        return sum(len(entry.shape) for entry in checkpoint.entries)


def add_ratios(datasets, results):
    """For every row that is not streamexport's export: how many times faster export is
    (elements/s), against export in the matching float mode, on the same dataset and, for the
    adapter's smaller checkpoint, also against the main checkpoint of the same dtype."""
    by_dataset = {}
    for row in results:
        by_dataset.setdefault(row["dataset"], []).append(row)
    dtype_of = {d["id"]: d["dtype"] for d in datasets}
    size_of = {d["id"]: d["data_bytes"] for d in datasets}
    for row in results:
        if row["key"].startswith("export-") or row["key"] == "verify" \
                or not row.get("elements_per_s"):
            continue
        ratios = {}
        if row["key"] == "ijson":
            for other in by_dataset[row["dataset"]]:
                if other["key"] == "verify" and other.get("elements_per_s"):
                    ratios["verify"] = other["elements_per_s"] / row["elements_per_s"]
            row["ratios"] = ratios
            continue
        mode = "export-shortest" if row["mode"] == "shortest" else "export-exact"
        for other in by_dataset[row["dataset"]]:
            if other["key"] == mode and other.get("elements_per_s"):
                ratios[f"{other['contender']}"] = other["elements_per_s"] / row["elements_per_s"]
        if row["key"] == "torchlean":
            # against export on the largest checkpoint of this dtype too (the ratio)
            same = [d for d in datasets if d["dtype"] == dtype_of[row["dataset"]]
                    and d["id"] != row["dataset"]]
            if same:
                big = max(same, key=lambda d: d["data_bytes"])
                if size_of[big["id"]] > size_of[row["dataset"]]:
                    for other in by_dataset.get(big["id"], []):
                        if other["key"] == mode and other.get("elements_per_s"):
                            ratios[f"{other['contender']} on {big['id']}"] = \
                                other["elements_per_s"] / row["elements_per_s"]
        row["ratios"] = ratios


# ---- the formatter section -----------------------------------------------------------------

def formatter_section(args, workdir):
    import orjson
    import torch

    import streamexport
    elements = max(1024, args.formatter_elements // 1024 * 1024)
    rng = np.random.default_rng(args.seed)
    f64 = rng.normal(0.0, WEIGHT_STD, elements).reshape(elements // 1024, 1024)
    f32 = f64.astype(np.float32)
    bf16 = torch.from_numpy(f32).to(torch.bfloat16)
    dumps = getattr(streamexport, "dumps", None)
    how = "streamexport.dumps"
    if dumps is None:
        from .formatter import format_chunk
        how = "formatter.format_chunk"

        def dumps(array, float_format="exact"):
            dtype = "bfloat16" if isinstance(array, torch.Tensor) else str(array.dtype)
            data = array.view(torch.int16).numpy() if dtype == "bfloat16" else array
            return format_chunk(data, dtype, array.shape, 0, data.size, float_format)
    option = orjson.OPT_SERIALIZE_NUMPY
    f32_upcast = f32.astype(np.float64)
    cases = [
        ("float32 exact", f32, "exact", f32_upcast, "float64 upcast", "exact", "float32"),
        ("float32 shortest", f32, "shortest", f32, "float32 array", "shortest", "float32"),
        ("bfloat16 exact", bf16, "exact", bf16.to(torch.float64).numpy(), "float64 upcast",
         "exact", "bfloat16"),
        ("bfloat16 shortest", bf16, "shortest", bf16.to(torch.float32).numpy(), "float32 upcast",
         "shortest", "bfloat16"),
        ("float64", f64, "exact", f64, "float64 array", "exact", "float64"),
    ]
    cases = [case + (None,) for case in cases] + _slower_path_cases(f32, f32_upcast)
    repeat = max(args.repeat, FORMATTER_MIN_REPEAT)
    rows = []
    for name, mine, fmt, theirs, their_input, mode, dtype, path in cases:
        _log(args, f"formatter: {name}")
        dumps_here = dumps if path is None else _on_path(path, dumps)
        truth = (bf16.to(torch.float64).numpy() if dtype == "bfloat16" else
                 np.asarray(mine, dtype=np.float64))
        check = {}
        for who, text in (("streamexport", dumps_here(mine, float_format=fmt)),
                          ("orjson", orjson.dumps(theirs, option=option))):
            parsed = np.asarray(orjson.loads(text), dtype=np.float64)
            if mode == "exact" or dtype == "float64":
                same = np.array_equal(parsed.view(np.int64), truth.view(np.int64))
            else:
                same = np.array_equal(round_bits(parsed.reshape(-1), dtype),
                                      round_bits(truth.reshape(-1), dtype))
            check[who] = {"ok": bool(same), "bytes": len(text)}
        ours, others, ours_cpu, others_cpu, floor, floor_cpu = [], [], [], [], [], []
        size = check["streamexport"]["bytes"]
        for _ in range(repeat):     # interleaved, so a busy moment hits all three
            for call, wall, cpu in ((lambda: dumps_here(mine, float_format=fmt), ours, ours_cpu),
                                    (lambda: orjson.dumps(theirs, option=option), others,
                                     others_cpu),
                                    (lambda: _new_memory(size), floor, floor_cpu)):
                begin, begin_cpu = time.perf_counter(), time.thread_time()
                call()
                cpu.append(time.thread_time() - begin_cpu)
                wall.append(time.perf_counter() - begin)
        row = {"case": name, "elements": elements, "float_format": fmt, "orjson_input": their_input,
               "streamexport_seconds": _stats(ours), "orjson_seconds": _stats(others),
               "streamexport_eps": elements / statistics.median(ours),
               "orjson_eps": elements / statistics.median(others),
               "streamexport_bytes": check["streamexport"]["bytes"],
               "orjson_bytes": check["orjson"]["bytes"],
               "check": "ok" if all(c["ok"] for c in check.values()) else
               "MISMATCH: " + ", ".join(w for w, c in check.items() if not c["ok"])}
        row["ratio"] = row["streamexport_eps"] / row["orjson_eps"]
        # The same ratio in this thread's CPU time (page faults included): on a shared
        # machine it moves less than the wall-clock one, which the targets are judged on.
        row["cpu_ratio"] = statistics.median(others_cpu) / max(statistics.median(ours_cpu), 1e-9)
        # No dumps that returns new bytes can beat the time it takes to put that many bytes
        # into new memory: the ratio it would reach at that speed bounds the ratio above.
        row["new_memory_seconds"] = _stats(floor)
        row["new_memory_ratio"] = statistics.median(others) / statistics.median(floor)
        rows.append(row)
    section = {"elements": elements, "shape": [elements // 1024, 1024], "repeat": repeat,
               "how": how, "std": WEIGHT_STD, "rows": rows}
    section["export_threads"] = _export_threads(args, workdir, repeat)
    return section


def _new_memory(nbytes):
    """Fill ``nbytes`` of newly allocated memory: what returning a new bytes object of that
    size costs at the least (the kernel zeroes every new page before it is written; numpy
    asks for huge pages, as dumps does)."""
    np.empty(nbytes, np.uint8).fill(0x31)


def _slower_path_cases(f32, upcast):
    """float32 exact again as a CPU without AVX-512 would run it: the AVX2 path (when this
    CPU has both, so that the row differs from the main one) and the scalar path."""
    try:
        from . import _speedups
    except ImportError:
        return []
    cases = []
    if _speedups.simd() and _speedups.simd_avx2():
        cases.append(("float32 exact, AVX2 path", f32, "exact", upcast, "float64 upcast", "exact",
                      "float32", "avx2"))
    if _speedups.simd() or _speedups.simd_avx2():
        cases.append(("float32 exact, scalar path", f32, "exact", upcast, "float64 upcast",
                      "exact", "float32", "scalar"))
    return cases


def _on_path(path, dumps):
    """dumps with the C core held to one path for the call: "avx2" (AVX-512 off) or
    "scalar" (every vector path off)."""
    from . import _speedups

    def call(array, float_format="exact"):
        if path == "avx2":
            _speedups.set_simd_avx512(False)
        else:
            _speedups.set_simd(False)
        try:
            return dumps(array, float_format=float_format)
        finally:
            _speedups.set_simd(True)
    return call


def _export_threads(args, workdir, repeat):
    """Export of a float32 checkpoint to /dev/null, 2 threads against 1, in this process."""
    import streamexport
    path = os.path.join(workdir, "export-threads-float32.pt")
    dataset = make_checkpoint(path, args.export_section_size, "float32", seed=args.seed)
    result = {"dataset": f"float32 {human_bytes(dataset['data_bytes'])}",
              "elements": dataset["elements"], "usable_cpus": usable_cpu_count()}
    try:
        _log(args, "formatter: export to /dev/null, 1 vs 2 threads")
        outputs = []
        for threads in (1, 2):       # check first: the same bytes with 1 and 2 threads
            out = os.path.join(workdir, f"threads-{threads}.json")
            streamexport.export(path, out, threads=threads, fsync=False)
            outputs.append(out)
        result["check"] = "ok: byte-identical" if filecmp.cmp(*outputs, shallow=False) \
            else "MISMATCH: 2 threads differ from 1"
        for out in outputs:
            _remove_quietly(out)
        times = {1: [], 2: [], "start-up": []}
        for _ in range(repeat):
            for threads in (1, 2):
                begin = time.perf_counter()
                streamexport.export(path, os.devnull, threads=threads, fsync=False)
                times[threads].append(time.perf_counter() - begin)
            times["start-up"].append(_start_up_seconds(path))
        result["start_up_seconds"] = _stats(times["start-up"])
        for threads in (1, 2):
            result[f"seconds_{threads}"] = _stats(times[threads])
            result[f"eps_{threads}"] = dataset["elements"] / statistics.median(times[threads])
        result["ratio"] = result["eps_2"] / result["eps_1"]
        result["formatting_only_ratio"] = _formatting_scaling(args.seed, repeat)
    except Exception as exc:  # reported in the table rather than losing the other figures
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        _remove_quietly(path)
    return result


def _formatting_scaling(seed, repeat, elements=4 * 2 ** 20):
    """Formatting alone (no checkpoint, no output), 2 threads against 1: what this machine
    gives two busy cores right now, the ceiling of the export's own ratio. None without
    the C core, or when the export does not use it (STREAMEXPORT_DISABLE_SPEEDUPS=1)."""
    from streamexport import formatter
    if formatter.IMPLEMENTATION != "c":
        return None
    from streamexport._speedups import chunk_capacity, format_into
    from streamexport.buffers import BufferPool
    from streamexport.tensors import DEFAULT_CHUNK_ELEMENTS as chunk
    data = memoryview(np.random.default_rng(seed).normal(0.0, WEIGHT_STD, elements)
                      .astype(np.float32).tobytes())
    shape = (elements,)
    starts = range(0, elements, chunk)

    def format_some(pool, mine):
        buffer = pool.take(chunk_capacity("float32", shape, 0, chunk))
        for start in mine:
            count = min(chunk, elements - start)
            format_into(buffer, data[4 * start:4 * (start + count)], "float32", shape, start,
                        count, "exact", "error")
        pool.give_back(buffer)

    times = {1: [], 2: []}
    with BufferPool() as pool:
        format_some(pool, starts)       # warm up: buffers mapped, code and data in cache
        for _ in range(repeat):
            for threads in (1, 2):
                workers = [threading.Thread(target=format_some, args=(pool, starts[n::threads]))
                           for n in range(threads)]
                begin = time.perf_counter()
                for worker in workers:
                    worker.start()
                for worker in workers:
                    worker.join()
                times[threads].append(time.perf_counter() - begin)
    return statistics.median(times[1]) / statistics.median(times[2])


def _start_up_seconds(path):
    """The serial part of an export before its first chunk: opening and checking the
    checkpoint (torch.load, the zip's structure), the same whatever the thread count."""
    from streamexport.sources import open_checkpoint
    begin = time.perf_counter()
    with open_checkpoint(path, crc_threads=1):
        seconds = time.perf_counter() - begin
    return seconds


# ---- command line ---------------------------------------------------------------------------

def _size_list(text):
    sizes = []
    for part in text.split(","):
        size, _, big = part.partition(":")
        sizes.append((parse_size(size), parse_size(big) if big else 0))
    return sizes


def _threads_list(text):
    if text == "all":
        return [usable_cpu_count()]
    out = []
    for part in text.split(","):
        value = usable_cpu_count() if part.strip() == "all" else int(part)
        if value < 1:
            raise argparse.ArgumentTypeError("threads must be >= 1")
        if value not in out:
            out.append(value)
    return out


def _name_list(text):
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONTENDER_NAMES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown contender(s) {', '.join(unknown)}; see --list")
    return names


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m streamexport.bench",
        description="Benchmark streamexport against TorchLean's adapter, an orjson streamer and "
                    "ijson, with peak memory; and its formatter against orjson.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  python -m streamexport.bench                      # quick: 2 MB, < 2 minutes\n"
               "  python -m streamexport.bench --size 256MB --dtype float32 --adapter-size 256MB"
               " --adapter-repeat 0 --reader-repeat 1\n"
               "  python -m streamexport.bench --size 0.5GB,2GB:1GB --only export-exact,orjson-f64"
               " --no-check --repeat 1   # peak RSS as the checkpoint grows\n"
               "  python -m streamexport.bench model.pt --json results.json\n"
               "  python benchmarks/record.py                       # the recorded results")
    parser.add_argument("checkpoints", nargs="*", metavar="CHECKPOINT",
                        help="bench these checkpoints instead of synthetic ones")
    parser.add_argument("--size", type=_size_list, default=_size_list(DEFAULT_SIZE),
                        metavar="SIZE[:BIG],...",
                        help=f"synthetic checkpoint sizes, binary units (default {DEFAULT_SIZE}); "
                             "SIZE:BIG puts one tensor of BIG bytes in it, e.g. 0.5GB,2GB:1GB")
    parser.add_argument("--dtype", type=lambda t: [d.strip() for d in t.split(",")],
                        default=DEFAULT_DTYPES.split(","), metavar="D,...",
                        help=f"synthetic checkpoint dtypes: float32, bfloat16, float16, float64 "
                             f"(default {DEFAULT_DTYPES})")
    parser.add_argument("--threads", type=_threads_list, default=None, metavar="N,...",
                        help="export thread counts to bench ('all' = usable CPUs; default 1,all)")
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT,
                        help=f"timed runs per contender (default {DEFAULT_REPEAT}); the formatter "
                             f"section uses at least {FORMATTER_MIN_REPEAT}")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the whole list of contenders this many times, each time in "
                             "new processes, and pool their timed runs (default 1): a busy "
                             "spell on a shared machine then falls on every contender")
    parser.add_argument("--adapter-size", type=parse_size, default=parse_size(DEFAULT_ADAPTER_SIZE),
                        metavar="SIZE", help="TorchLean's adapter runs on a checkpoint of at most "
                        f"this size (default {DEFAULT_ADAPTER_SIZE}: it runs at ~0.4 M elements/s)")
    parser.add_argument("--adapter-repeat", type=int, default=1,
                        help="timed runs of the adapter (default 1; 0: time its checked run "
                             "instead, for checkpoints where one run takes minutes)")
    parser.add_argument("--reader-repeat", type=int, default=None,
                        help="timed runs of verify and the ijson loop (default: --repeat)")
    parser.add_argument("--only", type=_name_list, default=list(CONTENDER_NAMES), metavar="NAMES",
                        help="run only these contenders / sections (comma-separated; see --list)")
    parser.add_argument("--skip", type=_name_list, default=[], metavar="NAMES",
                        help="leave out these contenders / sections")
    parser.add_argument("--formatter-elements", type=int, default=DEFAULT_FORMATTER_ELEMENTS,
                        help=f"array size of the formatter section (default {DEFAULT_FORMATTER_ELEMENTS})")
    parser.add_argument("--export-section-size", type=parse_size,
                        default=parse_size(DEFAULT_EXPORT_SECTION_SIZE), metavar="SIZE",
                        help="float32 checkpoint of the 2-vs-1-threads export "
                             f"(default {DEFAULT_EXPORT_SECTION_SIZE})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data (default 0)")
    parser.add_argument("--no-check", dest="check", action="store_false",
                        help="do not check the contenders' outputs (e.g. for multi-GB runs)")
    parser.add_argument("--fsync", action="store_true",
                        help="every export row fsyncs its output (by default only export-fsync "
                             "does: the other writers never fsync)")
    parser.add_argument("--workdir", default=None,
                        help="where the temporary directory goes (default: the system's)")
    parser.add_argument("--json", metavar="FILE", help="write every figure to FILE")
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    parser.add_argument("--list", action="store_true", help="list the contenders and exit")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.list:
        width = max(len(n) for n in CONTENDER_NAMES)
        for name, text in CONTENDER_HELP:
            print(f"{name.ljust(width)}  {text}")
        return 0
    if args.threads is None:
        args.threads = _threads_list("1,all")
    if args.reader_repeat is None:
        args.reader_repeat = args.repeat
    if args.repeat < 1 or args.reader_repeat < 1 or args.adapter_repeat < 0 or args.rounds < 1:
        raise SystemExit("--repeat, --reader-repeat and --rounds must be at least 1, "
                         "--adapter-repeat 0 or more")
    bad = [d for d in args.dtype if d not in _ITEMSIZE]
    if bad:
        raise SystemExit(f"unsupported --dtype {', '.join(bad)} (float32, bfloat16, float16, float64)")
    args.only = [n for n in args.only if n not in args.skip]
    if "verify" in args.only or "ijson" in args.only:
        if "export-exact" not in args.only:
            args.only.append("export-exact")     # they read its output
    report = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": machine_info(), "versions": versions(),
              "command": "python -m streamexport.bench " + " ".join(sys.argv[1:] if argv is None
                                                                   else argv),
              "args": {"size": args.size, "dtype": args.dtype, "threads": args.threads,
                       "repeat": args.repeat, "rounds": args.rounds,
                       "adapter_size": args.adapter_size,
                       "adapter_repeat": args.adapter_repeat, "reader_repeat": args.reader_repeat,
                       "only": args.only,
                       "check": args.check, "fsync": args.fsync, "seed": args.seed,
                       "checkpoints": args.checkpoints},
              "load_average": {"start": report_load()}}
    started = time.perf_counter()
    workdir = tempfile.mkdtemp(prefix="streamexport-bench-", dir=args.workdir)
    try:
        if "baseline" in args.only:
            report["baseline"] = run_child("baseline", {"dst": None, "runs": 1}, workdir)
        if any(not n == "formatter" and n != "baseline" for n in args.only):
            report["datasets"], report["results"] = checkpoint_section(args, workdir)
        if "formatter" in args.only:
            report["formatter"] = formatter_section(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report["load_average"]["end"] = report_load()
    report["seconds"] = time.perf_counter() - started
    report["targets"] = evaluate_targets(report)
    text = render(report, markdown=args.markdown)
    sys.stdout.write(text)
    sys.stdout.write(f"\n(bench took {report['seconds']:.0f} s)\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1, sort_keys=True)
    failed = [r for r in report.get("results", []) if (r.get("check") or {}).get("status")
              == "MISMATCH"]
    failed += [r for r in (report.get("formatter") or {}).get("rows", [])
               if r["check"] != "ok"]
    return 1 if failed else 0


def report_load():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


if __name__ == "__main__":
    sys.exit(main())
