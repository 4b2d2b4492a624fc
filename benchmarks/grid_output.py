"""The grid's outputs: the scaling figure and throughput.md (benchmarks/throughput.py runs the
cells; this only presents them)."""
from __future__ import annotations

import math
import textwrap
from pathlib import Path

from benchmarks import peak
from benchmarks.grid_rows import row_label
from common.results.figures import figure_title, legend_below, pyplot, save_figure
from common.results.markdown import environment_lines, machine_line
from common.results.tables import table, without_plain_labels

# What a grid needs to stand in the README's headline: every backend, spec and best, batch 64,
# and at least this many iterations per cell at batch 64 (the grid's default --min-iters).
HEADLINE_BATCH = 64
HEADLINE_MIN_ITERS = 8
TERMINAL_WIDTH = 120  # the grid's table on the terminal; the full one is throughput.md
TERMINAL_COLUMNS = ("backend", "label", "config", "batch", "status", "img/s", "range across runs", "speed / spec",
                    "step / bare step", "of measured peak", "peak MiB", "first step s")


def quick_try(args: dict) -> list[str]:
    """Why a grid (its throughput.json's args) is a quick try rather than a complete grid, or []:
    `publish --readme` leaves a quick try out of the README's headline. An argument a document
    lacks counts as the grid's default."""
    why = []
    backend, configs = args.get("backend", "all"), args.get("configs", "spec,best")
    batches = str(args.get("batch_sizes", HEADLINE_BATCH))
    if backend != "all":
        why.append(f"--backend {backend} (not all)")
    if not {"spec", "best"} <= set(configs.split(",")):
        why.append(f"--configs {configs} (not spec and best)")
    if str(HEADLINE_BATCH) not in batches.split(","):
        why.append(f"--batch-sizes {batches} (no {HEADLINE_BATCH})")
    iters = max(args.get("min_iters", HEADLINE_MIN_ITERS), math.ceil(args.get("images", 0) / HEADLINE_BATCH))
    if iters < HEADLINE_MIN_ITERS:
        why.append(f"{iters} iteration(s) at batch {HEADLINE_BATCH} (under {HEADLINE_MIN_ITERS}: "
                   "raise --images or --min-iters)")
    return why


def version_lines(doc: dict) -> list[str]:
    """One line per other environment the grid's rows ran in (NAME@ENV): its labels, Python and
    the versions that matter, as report.md gives them."""
    return environment_lines({"backends": {label: {"environment": env}
                                           for label, env in (doc.get("environments") or {}).items()}})


def terminal(doc: dict, folder: Path) -> str:
    """The grid on a terminal, within TERMINAL_WIDTH columns: the columns a reader compares first
    (those that fit, in TERMINAL_COLUMNS' order), why a cell has no number below the table, and
    where the full table is."""
    rows = without_plain_labels(doc["rows"])
    present = [c for c in TERMINAL_COLUMNS if any(r.get(c) not in (None, "", "ok") for r in rows)]
    shown = [{c: r.get(c) for c in present if c != "status" or r["status"] != "ok"} for r in rows]
    while True:
        text = table([{c: r.get(c) for c in present} for r in shown], "github")
        if max(map(len, text.splitlines())) <= TERMINAL_WIDTH or len(present) <= 4:
            break
        present.pop()
    notes = [f"{row_label(r)} {r['config']}: {r.get('reason')}" for r in rows if r.get("reason")]
    lines = [text, ""]
    for note in dict.fromkeys(notes):
        lines += textwrap.wrap(note, TERMINAL_WIDTH, initial_indent="- ", subsequent_indent="  ")
    why = quick_try(doc["args"])
    if why:
        lines += textwrap.wrap("A quick try, not a complete grid (" + "; ".join(why) + "): publish --readme "
                               "leaves it out of the README.", TERMINAL_WIDTH)
    lines += ["Wrote throughput.md (the full table), throughput.json and scaling.png into:", f"  {folder}/",
              "Publish it:", f"  python -m benchmarks.publish {folder}/throughput.json"]
    return "\n".join(lines)


def _context(doc: dict, rows: list[dict]) -> str:
    """What the grid measured, for a figure's title: preset, images per cell, repeats, device, date."""
    a, prov = doc["args"], doc["provenance"]
    where = ", ".join(prov.get("gpus") or []) or prov.get("cpu")
    devices = "/".join(sorted({r["device"] for r in rows if r.get("device")}))
    return (f"preset {a['preset']}, {a['images']} images per cell, {a['repeats']} repeat(s), "
            f"{devices} ({where}), {doc['started'][:10]}")


def scaling_figure(doc: dict, rows: list[dict], path: Path) -> None:
    """img/s and peak memory against batch size, one line per backend and configuration; a grid
    of one batch size has no such lines and gets the runs figure instead."""
    if len({r["batch"] for r in rows if r["status"] == "ok"}) == 1:
        return runs_figure(doc, rows, path)
    context = _context(doc, rows)
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    series: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        if r["status"] == "ok":
            series.setdefault((row_label(r), r["config"]), []).append(r)
    # One colour per backend, one line style per configuration: with five backends of three
    # configurations each, matplotlib's 10-colour cycle gave two backends the same colour.
    names = sorted({name for name, _ in series})
    colour = {name: f"C{i % 10}" for i, name in enumerate(names)}
    for (name, config), rs in sorted(series.items()):
        rs = sorted(rs, key=lambda r: r["batch"])
        style = "-" if config.startswith("spec") else ":" if config == "bare loop" else "--"
        x = [r["batch"] for r in rs]
        for ax, y in ((ax1, [r["img/s"] for r in rs]), (ax2, [r["_peak_bytes"] / 2**20 for r in rs])):
            ax.plot(x, y, style, marker="o", color=colour[name], label=f"{name} {config}")
    batches = sorted({r["batch"] for rs in series.values() for r in rs})
    for ax, ylabel, note in ((ax1, "img/s", "median over each cell; higher is better"),
                             (ax2, "peak memory (MiB)", "RSS on a CPU, allocator peak on a GPU")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.set(xlabel="batch size (images per step)", ylabel=ylabel)
        ax.set_title(note, fontsize=9)
        ax.grid(alpha=0.3)
    figure_title(fig, "throughput and peak memory against batch size", context)
    legend_below(fig, ax1, columns=4)
    fig.tight_layout(rect=(0, 0.06 + 0.05 * math.ceil(len(series) / 4), 1, 1))
    save_figure(fig, path)


def runs_figure(doc: dict, rows: list[dict], path: Path) -> None:
    """A grid of one batch size (the paired batch-64 grids): every run's img/s as a dot, one
    column per backend and configuration, the cell's median as a bar across it, so the spread
    behind each median is visible, and a faint line joins one backend's runs of the same pass (the
    pairs behind `step / bare step` and `speed / spec`). Lines against batch size would stack
    every cell on one x."""
    cells = [r for r in rows if r["status"] == "ok"]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(11, 4.5))
    names = list(dict.fromkeys(row_label(r) for r in cells))
    colour = {"spec": "C0", "bare": "C7", "fast": "C1"}
    kinds = set()
    for i, name in enumerate(names):
        mine = [r for r in cells if row_label(r) == name]
        xs = [i + (j - (len(mine) - 1) / 2) * 0.3 for j in range(len(mine))]
        per_run = [r.get("img/s per run") or [] for r in mine]
        for k in range(max(map(len, per_run), default=0)):  # pass k across this backend's cells
            pts = [(x, v[k]) for x, v in zip(xs, per_run) if k < len(v) and v[k] is not None]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "-", color="0.6", alpha=0.35, linewidth=0.7)
        for j, r in enumerate(mine):
            x = xs[j]
            kind = "spec" if r["config"].startswith("spec") else "bare" if r["config"] == "bare loop" else "fast"
            runs = [v for v in r.get("img/s per run") or [r["img/s"]] if v is not None]
            label = {"spec": "spec (float32)", "bare": "bare loop", "fast": "fast path (named below)"}[kind]
            ax.plot([x] * len(runs), runs, "o", color=colour[kind], alpha=0.45, markersize=4,
                    label=None if kind in kinds else f"{label}: one run each")
            ax.plot([x - 0.1, x + 0.1], [r["img/s"]] * 2, "-", color=colour[kind], linewidth=2.5)
            kinds.add(kind)
            # one line per fast path ("channels_last\n+bf16"): a long name ran into its neighbours
            ax.annotate(r["config"].replace(" (float32)", "").replace("bare loop", "bare").replace("+", "\n+"),
                        (x, 0), xycoords=("data", "axes fraction"), xytext=(0, -5), textcoords="offset points",
                        ha="center", va="top", fontsize=7)
    ax.set_xticks(range(len(names)), names)
    ax.tick_params(axis="x", pad=30, length=0)
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_ylim(bottom=0)
    ax.set(ylabel="img/s (each run's median step)")
    ax.set_title("bar: the cell's median over runs; higher is better", fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    batch = cells[0]["batch"] if cells else ""
    figure_title(fig, f"img/s per run at batch {batch}", _context(doc, rows))
    legend_below(fig, ax, columns=3)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    save_figure(fig, path)


def render(doc: dict) -> str:
    prov, a = doc["provenance"], doc["args"]
    lines = [
        f"Command: `{doc['command']}`", "",
        machine_line(prov),
        f"- Software: Python {prov.get('python')}; "
        + ", ".join(f"{k} {v}" for k, v in (prov.get("packages") or {}).items()),
        *version_lines(doc),
        f"- Code: git {(prov.get('git') or {}).get('commit')}; started {doc['started']}, "
        f"finished {doc['finished']} ({doc['grid_seconds'] / 60:.1f} min for the whole grid)"
        + (f"; redrawn later: {doc['redrawn']}" if doc.get("redrawn") else ""),
        f"- Cells: preset {a['preset']}, synthetic data, {a['images']} images per cell "
        f"(ceil(images/batch) iterations, at least {a['min_iters']}), {a['repeats']} run(s) per cell, "
        f"{a['threads']} threads for every framework; warm-up excluded from img/s; `threads` is "
        "each framework's own setting as it reported it; `load before` is the 1-minute load "
        "average when the cell started, which includes the grid's own previous cell (up to about "
        "the thread count): a value well above that means something else was running; `CPU stolen` "
        "is the largest share of CPU time a hypervisor took during any of the cell's runs "
        "(/proc/stat), which slows a run without showing in the load",
        "- Model FLOPs per image and iteration: "
        f"{doc['flops_per_image'] / 1e9:.3f} GFLOP (common/metrics/flops.py). `of measured peak`: the "
        "cell's model GFLOP/s over the device's dense GEMM rate at the cell's precision (bf16 for "
        "bf16 paths, else fp32), measured "
        f"{'earlier in the same session, read from ' + a['peaks'] if a.get('peaks') else 'at the start of this grid'} "
        f"(benchmarks/peak.py, the fastest block): {peak.describe(doc.get('peaks') or {}) or 'not measured (--peak-seconds 0)'}. "
        "`of datasheet peak` only where the device is a GPU with a known dense peak "
        "(common/metrics/flops.py)",
        *([(f"- A quick try, not a complete grid ({'; '.join(quick_try(a))}): `publish --readme` leaves it "
             "out of the README")] if quick_try(a) else []),
        "", table([{k: (", ".join("-" if x is None else f"{x}" for x in v) if isinstance(v, list) else v)
                    for k, v in r.items()} for r in without_plain_labels(doc["rows"])], "github"), ""]
    if doc.get("quality_rows"):
        lines += [f"Sample quality of the best-available paths against spec: mnist-5k, batch 64, "
                  f"{a['quality_iters']} iterations, seed 0, shared initial weights; FD and "
                  "classifier score as in docs/quality.md (± bootstrap spread):", "",
                  table(without_plain_labels(doc["quality_rows"]), "github"), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    import benchmarks
    raise SystemExit(benchmarks.internal_entry("benchmarks.grid_output", "the grid's table and scaling figure", "benchmarks.throughput -h"))
