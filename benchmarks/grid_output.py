"""The grid's outputs: the scaling figure and throughput.md (benchmarks/throughput.py runs the
cells; this only presents them)."""
from __future__ import annotations

import math
from pathlib import Path

from benchmarks import peak
from common.results.figures import figure_title, legend_below, pyplot, save_figure
from common.results.tables import table


def scaling_figure(doc: dict, rows: list[dict], path: Path) -> None:
    """img/s and peak memory against batch size, one line per backend and configuration, titled
    with what the grid measured (preset, images per cell, repeats, device, date)."""
    a, prov = doc["args"], doc["provenance"]
    where = ", ".join(prov.get("gpus") or []) or prov.get("cpu")
    devices = "/".join(sorted({r["device"] for r in rows if r.get("device")}))
    context = (f"preset {a['preset']}, {a['images']} images per cell, {a['repeats']} repeat(s), "
               f"{devices} ({where}), {doc['started'][:10]}")
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    series: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        if r["status"] == "ok":
            series.setdefault((r["backend"], r["config"]), []).append(r)
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


def render(doc: dict) -> str:
    prov, a = doc["provenance"], doc["args"]
    gpu = ", ".join(prov["gpus"]) if prov.get("gpus") else "no GPU"
    lines = [
        f"Command: `{doc['command']}`", "",
        f"- Machine: {prov.get('cpu')}, {prov.get('cpu_count')} logical CPUs, {gpu}",
        f"- Software: Python {prov.get('python')}; "
        + ", ".join(f"{k} {v}" for k, v in (prov.get("packages") or {}).items()),
        f"- Code: git {(prov.get('git') or {}).get('commit')}; started {doc['started']}, "
        f"finished {doc['finished']} ({doc['grid_seconds'] / 60:.1f} min for the whole grid)",
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
        "", table(doc["rows"], "github"), ""]
    if doc.get("quality_rows"):
        lines += [f"Sample quality of the best-available paths against spec: mnist-5k, batch 64, "
                  f"{a['quality_iters']} iterations, seed 0, shared initial weights; FD and "
                  "classifier score as in docs/quality.md (± bootstrap spread):", "",
                  table(doc["quality_rows"], "github"), ""]
    return "\n".join(lines)
