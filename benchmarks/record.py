"""Run the bench and record its results here: benchmarks/RESULTS.md, benchmarks/results/*.json
and benchmarks/bench.png (throughput and peak RSS per contender, with machine and date).

    python benchmarks/record.py                 # the recorded runs (about 20 minutes on 2 cores)
    python benchmarks/record.py --quick --out /tmp/x   # the same runs at tiny sizes, to try it
    python benchmarks/record.py --render-only   # rebuild RESULTS.md and the plot from the JSON

The runs (each is one `python -m streamexport.bench` invocation, so each has its own table):

* main  -- float32, 256 MB, written to real files: every contender (three rounds over the
           whole list, so a busy spell on the shared machine falls on all), TorchLean's adapter on
           the same checkpoint, and the formatter section (issue 3 item 5; its export to
           /dev/null with 2 threads vs 1 on a 256 MB float32 checkpoint too);
* rss   -- float32 at 0.5 GB and 2 GB (the latter with one 1 GB tensor): export's peak RSS
           as the checkpoint grows, against the orjson streamer's (outputs not checked: the
           main run checks the same code paths);
* bf16  -- bfloat16, 128 MB: export and the orjson streamer;
* default -- `python -m streamexport.bench` with no argument (2 MB float32 and bfloat16), to
           show how long the quick run takes;
* formatter-2, -3, -4 -- the formatter section alone, three more times, so RESULTS.md shows
           each of its targets as every run measured it.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

RUNS = {
    "main": ["--size", "256MB", "--dtype", "float32", "--adapter-size", "256MB",
             "--repeat", "2", "--rounds", "3", "--adapter-repeat", "0", "--reader-repeat", "1",
             "--export-section-size", "256MB"],
    "rss": ["--size", "0.5GB,2GB:1GB", "--dtype", "float32", "--repeat", "1", "--no-check",
            "--only", "export-exact,orjson-f64"],
    "bf16": ["--size", "128MB", "--dtype", "bfloat16",
             "--only", "export-exact,export-shortest,orjson-f64,orjson-native"],
    "default": [],      # `python -m streamexport.bench` as is: how long the quick run takes
}
# The formatter section again, three more times after the runs above (a few minutes apart):
# on this shared machine its ratios move between runs (orjson's own speed moved by 60%
# between two runs an hour apart), so RESULTS.md shows each formatter target in every run.
SPREAD = {f"formatter-{n}": ["--only", "formatter", "--export-section-size", "256MB"]
          for n in (2, 3, 4)}
QUICK_SPREAD = {name: ["--only", "formatter", "--formatter-elements", "4096",
                       "--export-section-size", "64KB"] for name in SPREAD}

QUICK = {
    "main": ["--size", "256KB", "--dtype", "float32", "--adapter-size", "256KB", "--repeat", "2",
             "--adapter-repeat", "0", "--reader-repeat", "1",
             "--formatter-elements", "65536", "--export-section-size", "256KB"],
    "rss": ["--size", "256KB,1MB:512KB", "--dtype", "float32", "--repeat", "1", "--no-check",
            "--only", "export-exact,orjson-f64"],
    "bf16": ["--size", "256KB", "--dtype", "bfloat16",
             "--only", "export-exact,export-shortest,orjson-f64,orjson-native"],
    "default": ["--size", "64KB", "--adapter-size", "64KB", "--formatter-elements", "4096",
                "--export-section-size", "64KB"],
}


def run(name, args, out):
    path = os.path.join(out, "results", f"{name}.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    command = [sys.executable, "-m", "streamexport.bench", *args, "--json", path]
    print(f"[record] {name}: {' '.join(command[1:])}", flush=True)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    started = time.time()
    done = subprocess.run(command, cwd=ROOT, env=env)
    print(f"[record] {name}: exit {done.returncode} after {time.time() - started:.0f} s", flush=True)
    return done.returncode


def load_reports(out):
    reports = {}
    for name in RUNS:
        path = os.path.join(out, "results", f"{name}.json")
        if os.path.exists(path):
            with open(path) as f:
                reports[name] = json.load(f)
    return reports


def render_results(reports, out, plot_name="bench.png"):
    sys.path.insert(0, ROOT)
    from streamexport.bench import evaluate_targets, render
    for report in reports.values():      # with the current rules, also for --render-only
        report["targets"] = evaluate_targets(report)
    lines = ["# streamexport benchmark results", "",
             "Recorded with `python benchmarks/record.py` (each section below is one "
             "`python -m streamexport.bench` run; its command line is given). Every figure is "
             "also in `results/*.json`.", ""]
    if os.path.exists(os.path.join(out, plot_name)):
        lines += [f"![throughput and peak RSS per contender]({plot_name})", ""]
    # each target from the first run that measured it (main before bf16 before rss), except
    # RSS flatness, which only the rss run measures as intended
    chosen = {}
    for name, report in reports.items():
        for t in report.get("targets", []):
            if t["name"] == "rss" and name != "rss" and "rss" in reports:
                continue
            chosen.setdefault(t["name"], t)
    targets = list(chosen.values())
    if targets:
        lines += ["## Targets of issues 3 and 6", "",
                  "| issue | target | measured | met |", "|---|---|---|---|"]
        lines += [f"| {t['issue']} | {t['what']} | {t['measured']} | "
                  f"{'yes' if t['met'] else '**no**'} |" for t in targets]
        lines.append("")
    lines += _across_runs(reports, out)
    loads = [(name, r.get("load_average", {})) for name, r in reports.items()]
    cpus = max((r["machine"].get("usable_cpus") or 1) for r in reports.values()) if reports else 1
    busiest = max([l[0] for _, load in loads for l in (load.get("start"), load.get("end")) if l]
                  or [0.0])
    shared = ("The machine was shared with other jobs while recording (a 1-minute load average "
              f"up to {busiest:.1f} on {cpus} CPUs), so the figures are conservative. "
              if busiest > 0.75 * cpus else
              "The machine is shared with other engineers' jobs; the bench itself keeps about one "
              "CPU busy, so a 1-minute load average near 1 means it ran mostly alone. ")
    lines += [shared + "Load averages (1/5/15 minutes) at the start and end of each run: "
              + "; ".join(f"{name} {_load(l.get('start'))} -> {_load(l.get('end'))}"
                          for name, l in loads) + ".", ""]
    others = sorted(f for f in os.listdir(os.path.join(out, "results"))
                    if f.endswith(".json") and f[:-5] not in RUNS and f[:-5] not in SPREAD) \
        if os.path.isdir(os.path.join(out, "results")) else []
    if others:
        lines += ["Other recorded runs, kept to show the spread between runs on this machine "
                  "(their JSON is in `results/`):", ""]
        for name in others:
            with open(os.path.join(out, "results", name)) as f:
                other = json.load(f)
            found = "; ".join(f"{t['name']} {t['measured'].split(' (')[0]}"
                              for t in evaluate_targets(other))
            lines.append(f"- `{name}` ({other['date']}, load {_load(other['load_average'].get('start'))}"
                         f" -> {_load(other['load_average'].get('end'))}): {found}")
        lines.append("")
    for name, report in reports.items():
        text = render(report, markdown=True)
        lines += [f"# Run `{name}`", "", text.replace("\n## ", "\n### ").replace("## ", "### ", 1)]
    with open(os.path.join(out, "RESULTS.md"), "w") as f:
        f.write("\n".join(lines).rstrip() + "\n")


def _across_runs(reports, out):
    """Each formatter target as the main run and the SPREAD runs measured it (the same
    parameters; the default run's export section is smaller, so it is left out)."""
    from streamexport.bench import evaluate_targets
    runs = [("main", reports["main"])] if reports.get("main", {}).get("formatter") else []
    for name in SPREAD:
        path = os.path.join(out, "results", f"{name}.json")
        if os.path.exists(path):
            with open(path) as f:
                runs.append((name, json.load(f)))
    if len(runs) < 2:
        return []
    measured = {}
    for name, report in runs:
        for t in evaluate_targets(report):
            if t.get("value") is not None and t["name"] in FORMATTER_TARGETS:
                measured.setdefault(t["name"], []).append((name, report["date"], t))
    lines = ["### The formatter's targets in every recorded run", "",
             "The same section measured in " + str(len(runs)) + " runs, minutes apart "
             "(each ratio within one run, both sides interleaved in one process):", "",
             "| target | " + " | ".join(f"`{name}` ({runs[i][1]['date'][11:]})"
                                       for i, (name, _) in enumerate(runs)) + " | median | met in |",
             "|---|" + "---|" * (len(runs) + 2)]
    for key, found in measured.items():
        values = [t["value"] for _, _, t in found]
        cells = [f"{t['value']:.2f}x" for _, _, t in found]
        met = sum(t["met"] for _, _, t in found)
        lines.append(f"| {found[0][2]['what']} | " + " | ".join(cells)
                     + f" | {statistics.median(values):.2f}x | {met} of {len(found)} |")
    return lines + [""]


FORMATTER_TARGETS = ("float32 exact", "float32 shortest", "bfloat16 exact", "float64",
                     "export threads")


def _load(values):
    return "?" if not values else "/".join(f"{v:.1f}" for v in values)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to try the script")
    parser.add_argument("--out", default=HERE, help="where to write (default: benchmarks/)")
    parser.add_argument("--only", default=",".join([*RUNS, *SPREAD]),
                        help=f"runs to make (default {','.join([*RUNS, *SPREAD])})")
    parser.add_argument("--render-only", action="store_true",
                        help="only rebuild RESULTS.md and the plot from results/*.json")
    args = parser.parse_args(argv)
    status = 0
    if not args.render_only:
        table = dict(QUICK, **QUICK_SPREAD) if args.quick else dict(RUNS, **SPREAD)
        for name in args.only.split(","):
            status |= run(name, table[name], args.out)
    reports = load_reports(args.out)
    try:
        from plot import plot   # benchmarks/plot.py; needs matplotlib
    except ImportError as exc:
        print(f"[record] no plot: {exc}", file=sys.stderr)
    else:
        plot(reports, os.path.join(args.out, "bench.png"))
    render_results(reports, args.out)
    print(f"[record] wrote {os.path.join(args.out, 'RESULTS.md')}")
    return status


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    sys.exit(main())
