"""The bench's targets (issues 3 and 6) and its tables, as text or markdown.

Everything here works on the report dictionary ``python -m streamexport.bench --json`` writes,
so recorded results can be rendered again later (benchmarks/record.py does).
"""

TARGETS = {  # name -> issue, what, threshold
    "adapter": ("6", "export >= 100x TorchLean's adapter (float32, >= 200 MB, real file)", 100.0),
    "orjson": ("6", "export >= 4x the orjson streamer (float32, >= 200 MB, real file)", 4.0),
    "rss": ("6", "peak RSS flat as the checkpoint grows (0.5 GB -> 2 GB with a 1 GB tensor)", None),
    "float32 exact": ("3", "dumps float32 exact >= 3x orjson on the float64 upcast", 3.0),
    "float32 shortest": ("3", "dumps float32 shortest >= 2.5x orjson on the float32 array", 2.5),
    "bfloat16 exact": ("3", "dumps bfloat16 exact >= 10x orjson on the float64 upcast", 10.0),
    "float64": ("3", "dumps float64 >= 2x orjson on float64", 2.0),
    "export threads": ("3", "export to /dev/null, 2 threads >= 1.8x 1 thread", 1.8),
}
RSS_FLAT_SHARE = 0.05   # "flat": peak RSS grows by < 5% of the checkpoint's growth


def human_bytes(nbytes):
    for unit, scale in (("GB", 2 ** 30), ("MB", 2 ** 20), ("KB", 2 ** 10)):
        if nbytes >= scale:
            value = nbytes / scale
            return f"{value:.{2 if value < 10 else 1 if value < 100 else 0}f} {unit}"
    return f"{nbytes} B"


def evaluate_targets(report):
    found = []
    datasets = report.get("datasets", [])
    results = report.get("results", [])
    f32 = [d for d in datasets if d["dtype"] == "float32" and d.get("synthetic", True)]

    def row(dataset_id, key, threads=None):
        for r in results:
            if r["dataset"] == dataset_id and r["key"] == key and r.get("elements_per_s") \
                    and (threads is None or r["threads"] == threads):
                return r
        return None

    def best_export(dataset_id, key="export-exact"):
        rows = [r for r in results if r["dataset"] == dataset_id and r["key"] == key
                and r.get("elements_per_s")]
        return max(rows, key=lambda r: r["elements_per_s"]) if rows else None

    if f32:
        main = max(f32, key=lambda d: d["data_bytes"])
        note = "" if main["data_bytes"] >= 200 * 10 ** 6 else " (checkpoint below 200 MB)"
        ours = best_export(main["id"])
        adapter = [r for r in results if r["key"] == "torchlean" and r.get("elements_per_s")
                   and any(d["id"] == r["dataset"] and d["dtype"] == "float32" for d in datasets)]
        single = row(main["id"], "export-exact", threads=1)

        def one_thread(theirs):
            if single is None or single is ours:
                return ""
            return f"; 1 thread: {single['elements_per_s'] / theirs['elements_per_s']:.1f}x"
        if ours and adapter:
            theirs = adapter[0]
            ratio = ours["elements_per_s"] / theirs["elements_per_s"]
            where = "" if theirs["dataset"] == main["id"] else f", adapter on {theirs['dataset']}"
            found.append(_target("adapter", ratio, f"{ratio:.0f}x ({ours['contender']} on "
                                 f"{main['id']}{where}{one_thread(theirs)}){note}"))
        theirs = row(main["id"], "orjson-f64")
        if ours and theirs:
            ratio = ours["elements_per_s"] / theirs["elements_per_s"]
            found.append(_target("orjson", ratio, f"{ratio:.1f}x ({ours['contender']} on "
                                 f"{main['id']}{one_thread(theirs)}){note}"))
    def widest_export(dataset_id):      # all threads: the most memory export can use
        rows = [r for r in results if r["dataset"] == dataset_id and r["key"] == "export-exact"
                and r.get("peak_rss")]
        return max(rows, key=lambda r: r["threads"] or 0) if rows else None

    by_dtype = {}
    for d in datasets:
        r = widest_export(d["id"])
        if d.get("synthetic", True) and r is not None and r.get("peak_rss"):
            by_dtype.setdefault(d["dtype"], []).append((d, r))
    for dtype, sized in by_dtype.items():
        small = min(sized, key=lambda p: p[0]["data_bytes"])
        large = max(sized, key=lambda p: p[0]["data_bytes"])
        if large[0]["data_bytes"] < 2 * small[0]["data_bytes"]:
            continue        # one size only (or nearly): nothing to say about growth
        growth = large[1]["peak_rss"] - small[1]["peak_rss"]
        grown = large[0]["data_bytes"] - small[0]["data_bytes"]
        flat = growth < RSS_FLAT_SHARE * grown
        measured = (f"{large[1]['contender']}: {human_bytes(small[1]['peak_rss'])} at "
                    f"{small[0]['id']} -> {human_bytes(large[1]['peak_rss'])} at {large[0]['id']} "
                    f"(grew {growth / 2 ** 20:+.0f} MB while the checkpoint grew "
                    f"{grown / 2 ** 20:.0f} MB; flat = under {RSS_FLAT_SHARE:.0%} of that)")
        small_o, large_o = row(small[0]["id"], "orjson-f64"), row(large[0]["id"], "orjson-f64")
        if small_o and large_o and small_o.get("peak_rss") and large_o.get("peak_rss"):
            measured += (f"; the orjson streamer: {human_bytes(small_o['peak_rss'])} -> "
                         f"{human_bytes(large_o['peak_rss'])}")
        found.append({"name": "rss", "issue": "6", "what": TARGETS["rss"][1], "met": flat,
                      "measured": measured})
    section = report.get("formatter")
    if section:
        for r in section["rows"]:
            if r["case"] in TARGETS:
                ceiling = (f"; filling new memory of the output's size: "
                           f"{r['new_memory_ratio']:.2f}x" if "new_memory_ratio" in r else "")
                found.append(_target(r["case"], r["ratio"], f"{r['ratio']:.2f}x "
                                     f"({r['streamexport_eps'] / 1e6:.1f} vs "
                                     f"{r['orjson_eps'] / 1e6:.1f} M elements/s{ceiling})"))
        threads = section.get("export_threads", {})
        if threads.get("ratio"):
            found.append(_target("export threads", threads["ratio"],
                                 f"{threads['ratio']:.2f}x ({threads['eps_2'] / 1e6:.1f} vs "
                                 f"{threads['eps_1'] / 1e6:.1f} M elements/s, "
                                 f"{threads['usable_cpus']} usable CPUs, {threads['dataset']})"))
    return found


def _target(name, value, measured):
    issue, what, threshold = TARGETS[name]
    return {"name": name, "issue": issue, "what": what, "met": value >= threshold,
            "measured": measured, "value": value}


# ---- rendering -------------------------------------------------------------------------------

def _fmt(value, spec, missing="-"):
    return missing if value is None else format(value, spec)


def _ratio_text(row):
    """How many times faster export is than this row (1 thread / all threads)."""
    ratios = row.get("ratios") or {}
    if not ratios:
        return "-"
    if row["key"] == "ijson":
        return f"verify runs at {ratios['verify']:.2f}x" if "verify" in ratios else "-"
    here = [v for k, v in ratios.items() if " on " not in k]
    there = {}
    for k, v in ratios.items():
        if " on " in k:
            there.setdefault(k.split(" on ", 1)[1], []).append(v)
    text = " / ".join(f"{v:.1f}x" for v in here)
    for where, values in there.items():
        text += f" (export on {where}: " + " / ".join(f"{v:.1f}x" for v in values) + ")"
    return text


def _seconds_text(row):
    s = row["seconds"]
    if len(row.get("times", ())) == 1:
        return f"{s['median']:.3f}" + (" (its checked run)" if row.get("timed_the_checked_run")
                                       else " (1 run)")
    return f"{s['min']:.3f} / {s['median']:.3f} / {s['max']:.3f}"


def table_rows(report):
    """Rows of the checkpoint table as lists of strings (the header first)."""
    header = ["checkpoint", "contender", "thr", "check", "seconds min / med / max", "M elem/s",
              "MB/s", "peak RSS MB", "output MB", "export faster by (1 / all threads)"]
    rows = [header]
    for r in report.get("results", []):
        s = r.get("seconds")
        rows.append([
            r["dataset"], r["label"], _fmt(r.get("threads"), "d"),
            (r.get("check") or {}).get("status", "-") if "error" not in r else "ERROR",
            _seconds_text(r) if s else r.get("error", "-"),
            _fmt(r.get("elements_per_s") and r["elements_per_s"] / 1e6, ".2f"),
            _fmt(r.get("mb_per_s"), ".0f"),
            _fmt(r.get("peak_rss") and r["peak_rss"] / 2 ** 20, ".0f"),
            _fmt(r.get("output_bytes") and r["output_bytes"] / 2 ** 20, ".0f")
            if not r.get("input_bytes") else f"(reads {r['input_bytes'] / 2 ** 20:.0f})",
            _ratio_text(r)])
    return rows


def formatter_rows(report):
    section = report.get("formatter")
    if not section:
        return []
    rows = [["case", "orjson input", "check", "streamexport M elem/s", "orjson M elem/s", "ratio",
             "CPU-time ratio", "new-memory bound", "target"]]
    for r in section["rows"]:
        target = TARGETS.get(r["case"])
        cpu = f"{r['cpu_ratio']:.2f}x" if "cpu_ratio" in r else "-"
        bound = f"{r['new_memory_ratio']:.2f}x" if "new_memory_ratio" in r else "-"
        rows.append([r["case"], r["orjson_input"], r["check"],
                     f"{r['streamexport_eps'] / 1e6:.1f}", f"{r['orjson_eps'] / 1e6:.1f}",
                     f"{r['ratio']:.2f}x", cpu, bound, f">= {target[2]}x" if target else "-"])
    t = section.get("export_threads") or {}
    if t.get("ratio"):
        start_up = t.get("start_up_seconds")
        start_up = f", start-up {start_up['median'] * 1e3:.0f} ms in both" if start_up else ""
        if t.get("formatting_only_ratio"):
            start_up += f"; formatting alone scales {t['formatting_only_ratio']:.2f}x here"
        rows.append([f"export {t['dataset']} to /dev/null{start_up}", "(1 thread)", t["check"],
                     f"{t['eps_2'] / 1e6:.1f} (2 thr)", f"{t['eps_1'] / 1e6:.1f} (1 thr)",
                     f"{t['ratio']:.2f}x", "-", "-", ">= 1.8x"])
    elif t.get("error"):
        rows.append(["export to /dev/null", "-", "ERROR", t["error"], "-", "-", "-", "-",
                     ">= 1.8x"])
    return rows


def _text_table(rows):
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _markdown_table(rows):
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def render(report, markdown=False):
    table = _markdown_table if markdown else _text_table
    m, v = report["machine"], report["versions"]
    head = "## " if markdown else ""
    out = []
    mem = f"{m['memory_bytes'] / 2 ** 30:.1f} GB" if m.get("memory_bytes") else "?"
    load = report.get("load_average", {})
    out.append(f"{head}streamexport bench, {report['date']}")
    out.append("")
    out.append(f"machine: {m['cpu_model']}, {m['cpus']} CPUs ({m['usable_cpus']} usable), {mem} "
               f"RAM, {m['platform']}; load average {_load_text(load.get('start'))} at the start, "
               f"{_load_text(load.get('end'))} at the end")
    out.append("versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    out.append(f"command: {report['command']}")
    out.append("")
    if report.get("results"):
        rounds = report["args"].get("rounds", 1)
        runs = (f"median of {report['args']['repeat']} runs after a checked first run"
                if rounds == 1 else
                f"median of {rounds} rounds x {report['args']['repeat']} runs, the rounds one "
                "after the other over the whole list of contenders, each in new processes, "
                "after a checked first run")
        out.append(f"{head}Checkpoints (each contender in its own process; seconds = the work only, "
                   f"{runs}, unless the row says otherwise)")
        out.append("")
        for d in report["datasets"]:
            out.append(f"- {d['id']}: {d['tensors']} tensors, {d['elements']:,} elements, "
                       f"largest {d['largest_tensor']:,}; file {human_bytes(d['file_bytes'])}"
                       + (f"; {d['adapter_note']}" if d.get("adapter_note") else ""))
        out.append("")
        out.append(table(table_rows(report)))
        out.append("")
        notes = [f"{r['contender']} on {r['dataset']}: {r['check']['detail']}"
                 for r in report["results"] if (r.get("check") or {}).get("detail")]
        if notes:
            out.append("checks (before timing):" if not markdown else "Checks, made before timing:")
            out.append("")
            out += [("- " if markdown else "  ") + n for n in notes]
        else:
            out.append("Outputs not checked in this run (--no-check).")
        errors = [f"{r['contender']} on {r['dataset']}: {r['error']}" for r in report["results"]
                  if r.get("error")]
        if errors:
            out.append("")
            out.append("errors:")
            out += [("- " if markdown else "  ") + e for e in errors]
        out.append("")
        seconds = report.get("seconds")
        if seconds:
            out.append(f"The whole run took {seconds:.0f} s.")
            out.append("")
        if report.get("baseline"):
            b = report["baseline"]
            out.append(f"RSS floor (interpreter + torch, numpy, orjson, streamexport imports): "
                       f"{b['peak_rss'] / 2 ** 20:.0f} MB; imports take {b['import_seconds']:.2f} s "
                       "(not in the seconds above)")
            out.append("")
        if report["args"]["fsync"]:
            out.append("Every streamexport row fsyncs its output; the other writers do not. "
                       "Outputs are real files in the bench's temporary directory.")
        else:
            out.append("Outputs are real files in the bench's temporary directory, left in the "
                       "page cache by every writer (no fsync), except the row 'streamexport exact "
                       "+ fsync', which fsyncs as streamexport's command line does by default.")
        out.append("")
        out.append("MB = 2^20 bytes. M elem/s = the checkpoint's elements / median seconds; MB/s = "
                   "output written (input read, for verify and ijson) / median seconds. The orjson "
                   "rows time the whole script, float64 upcast included. 'export faster by' = "
                   "export's elements/s in the same float mode / the row's, with 1 and with all "
                   "threads.")
        out.append("")
    if report.get("formatter"):
        f = report["formatter"]
        out.append(f"{head}Formatter ({f['how']} vs orjson.dumps(OPT_SERIALIZE_NUMPY), "
                   f"{f['elements']:,} elements of normal(0, {f['std']}), shape {f['shape']}, "
                   f"one thread, median of {f['repeat']}, same process)")
        out.append("")
        out.append("orjson is timed on arrays already converted to its input (the upcast is not "
                   "timed); both outputs are parsed back and compared with the array first. "
                   "'ratio' is of wall-clock medians (what the targets are judged on); "
                   "'CPU-time ratio' is of the calling thread's CPU time, page faults included, "
                   "which other jobs on a shared machine disturb less. 'new-memory bound' is "
                   "the ratio a dumps would reach that did nothing but fill new memory of its "
                   "output's size (np.empty(n, uint8).fill, timed in the same loop): returning "
                   "new bytes costs at least that, so no formatter can beat that ratio here and "
                   "now.")
        out.append("")
        out.append(table(formatter_rows(report)))
        out.append("")
    if report.get("targets"):
        out.append(f"{head}Targets (issues 3 and 6)")
        out.append("")
        rows = [["issue", "target", "measured", "met"]]
        rows += [[t["issue"], t["what"], t["measured"], "yes" if t["met"] else "NO"]
                 for t in report["targets"]]
        out.append(table(rows))
    return "\n".join(out).rstrip() + "\n"


def _load_text(load):
    return "?" if not load else "/".join(f"{x:.2f}" for x in load)
