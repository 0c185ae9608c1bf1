"""Plot recorded bench results: throughput and peak RSS per contender, and peak RSS as the
checkpoint grows. Needs matplotlib (the bench itself does not).

    python benchmarks/plot.py results/main.json results/rss.json -o bench.png
"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

COLOURS = {"export-exact": "#1b7837", "export-fsync": "#a6dba0", "export-shortest": "#5aae61", "torchlean": "#b2182b",
           "orjson-f64": "#2166ac", "orjson-native": "#67a9cf", "verify": "#762a83",
           "ijson": "#c2a5cf"}


def _label(row):
    text = row["label"]
    if row.get("threads"):
        text += f", {row['threads']} thr"
    return text


def _main_rows(report):
    """Rows of the largest checkpoint, plus the adapter wherever it ran."""
    datasets = report.get("datasets") or []
    if not datasets:
        return [], None
    largest = max(datasets, key=lambda d: d["data_bytes"])
    rows = [r for r in report["results"] if r.get("elements_per_s")
            and (r["dataset"] == largest["id"] or r["key"] == "torchlean")]
    return rows, largest


def plot(reports, path):
    main = reports.get("main") or next(iter(reports.values()), None)
    if main is None:
        return
    rows, largest = _main_rows(main)
    rss = reports.get("rss")
    fig, axes = plt.subplots(1, 3 if rss else 2, figsize=(17 if rss else 12, 5.5))
    if rows:
        names = [_label(r) for r in rows]
        colours = [COLOURS.get(r["key"], "grey") for r in rows]
        ax = axes[0]
        ax.barh(names, [r["elements_per_s"] / 1e6 for r in rows], color=colours)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlim(right=max(r["elements_per_s"] for r in rows) / 1e6 * 6)
        ax.invert_yaxis()
        ax.set_xlabel("million elements / s (log scale; median)")
        ax.set_title(f"throughput, {largest['id']} checkpoint")
        for y, r in enumerate(rows):
            note = "" if r["dataset"] == largest["id"] else f"  (on {r['dataset']})"
            ax.text(r["elements_per_s"] / 1e6, y, f" {r['elements_per_s'] / 1e6:.2f}{note}",
                    va="center", fontsize=8)
        ax = axes[1]
        ax.barh(names, [r["peak_rss"] / 2 ** 20 for r in rows], color=colours)
        ax.invert_yaxis()
        ax.set_yticklabels([])
        ax.set_xlabel("peak RSS, MB (each contender in its own process)")
        ax.set_title("peak memory")
        floor = (main.get("baseline") or {}).get("peak_rss")
        if floor:
            ax.axvline(floor / 2 ** 20, color="black", linestyle=":", linewidth=1)
            ax.text(floor / 2 ** 20, -0.6, " python + torch imports", fontsize=8)
        for y, r in enumerate(rows):
            ax.text(r["peak_rss"] / 2 ** 20, y, f" {r['peak_rss'] / 2 ** 20:.0f}",
                    va="center", fontsize=8)
    if rss:
        ax = axes[2]
        sizes = {d["id"]: d["data_bytes"] for d in rss["datasets"]}
        series = {}
        for r in rss["results"]:
            if r.get("peak_rss"):
                series.setdefault((r["key"], r["label"], r.get("threads")), []).append(
                    (sizes[r["dataset"]] / 2 ** 30, r["peak_rss"] / 2 ** 30))
        for (key, label, threads), points in series.items():
            points.sort()
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o",
                    color=COLOURS.get(key, "grey"), linestyle="-" if threads in (None, 1) else "--",
                    label=label + (f", {threads} thr" if threads else ""))
        ax.set_xlabel("checkpoint size, GB (largest: one 1 GB tensor)")
        ax.set_ylabel("peak RSS, GB")
        ax.set_ylim(bottom=0)
        ax.set_xlim(left=0)
        ax.set_title("peak RSS as the checkpoint grows")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    machine, versions = main["machine"], main["versions"]
    memory = f"{machine['memory_bytes'] / 2 ** 30:.0f} GB" if machine.get("memory_bytes") else "?"
    fig.suptitle(f"streamexport bench, {main['date']} -- {machine['cpu_model']}, "
                 f"{machine['usable_cpus']} CPUs, {memory} RAM; python {versions['python']}, "
                 f"torch {versions['torch']}, orjson {versions['orjson']}, "
                 f"ijson {versions['ijson']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description="plot bench results")
    parser.add_argument("results", nargs="+", help="JSON files written by the bench's --json")
    parser.add_argument("-o", "--output", default="bench.png")
    args = parser.parse_args(argv)
    reports = {}
    for path in args.results:
        with open(path) as f:
            reports[os.path.splitext(os.path.basename(path))[0]] = json.load(f)
    plot(reports, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
