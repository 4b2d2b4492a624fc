"""The throughput grid's rows: one cell's row from its runs (the median over repeats, its
range, GFLOP/s and the fractions of the measured and datasheet peaks), and the paired
comparisons beside it (spec against the bare loop, every fast path against spec)."""
from __future__ import annotations

import numpy as np

from benchmarks import configs, peak
from common.cli import split_label
from common.metrics import flops


def cell_row(spec, label: str, config: str, batch: int, runs: list[dict], peaks: dict | None = None) -> dict:
    """One cell's row. label: the backend's name, or NAME@ENV (run in that environment); the row
    holds the plain name in "backend" and the label in "label", as results.json's rows do."""
    row = {"backend": split_label(label)[0], "label": label, "config": config, "batch": batch}
    ok = [r for r in runs if r["status"] == "ok"]
    if not ok:
        return dict(row, status=runs[0]["status"], reason=runs[0].get("reason") or "")
    medians = [r["summary"]["img_per_s_median"] for r in ok]
    s, dev = ok[0]["summary"], ok[0].get("device") or {}
    img_s = float(np.median(medians))
    gflops = img_s * flops.iteration_flops_per_image(spec) / 1e9
    datasheet = flops.dense_peak_flops(dev.get("name", ""), peak.precision_of(config)) \
        if dev.get("device") == "gpu" else None
    measured = peak.fraction(gflops, peaks or {}, dev.get("device", ""), config)
    row.update({
        "status": "ok", "runs": len(ok), "iters": s["steps"], "img/s": round(img_s, 1),
        "IQR (run 1)": f"{s['img_per_s_iqr'][0]:.1f}-{s['img_per_s_iqr'][1]:.1f}",
        "range across runs": f"{min(medians):.1f}-{max(medians):.1f}",
        # in pass order, a failed run as None: the pairs behind `step / bare step` and `speed / spec`
        "img/s per run": [round(r["summary"]["img_per_s_median"], 1) if r["status"] == "ok" else None
                          for r in runs],
        "first step s": round(float(np.median([r["summary"]["first_step_seconds"] for r in ok])), 3),
        "peak MiB": f"{max(r['summary']['peak_memory']['bytes'] for r in ok) / 2**20:.0f} "
                    f"({s['peak_memory']['kind']})",
        "_peak_bytes": max(r["summary"]["peak_memory"]["bytes"] for r in ok),
        "_run_img_s": [r["summary"]["img_per_s_median"] if r["status"] == "ok" else None for r in runs],  # unrounded
        "harness share": (f"{100 * max(r['summary']['harness_overhead_fraction'] for r in ok):.2f}%"
                          if "harness_overhead_fraction" in s else ""),
        "GFLOP/s": float(f"{gflops:.3g}"),
        "of measured peak": f"{100 * measured:.1f}%" if measured else "",
        "of datasheet peak": f"{100 * gflops * 1e9 / datasheet:.1f}%" if datasheet else "",
        "device": dev.get("device", ""),
        "threads": _threads(dev.get("threads")),
        "load before": round(max(r["load_before"] for r in runs), 2),
        "CPU stolen": _stolen(runs),
    })
    return row


def _stolen(runs: list[dict]) -> str:
    """The most CPU time a hypervisor took during any of the cell's runs, '' where not known."""
    known = [r["cpu_stolen"] for r in runs if r.get("cpu_stolen") is not None]
    return f"{100 * max(known):.1f}%" if known else ""


def _threads(settings: dict | None) -> str:
    """A framework's thread settings as it reported them, short: 'get_num_threads=2, ...'."""
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in sorted((settings or {}).items()))


def row_label(row: dict) -> str:
    """A row's label (a grid written before labels has only the backend's name)."""
    return row.get("label") or row["backend"]


def add_bare_comparison(rows: list[dict]) -> None:
    """Throughput the harness loses against the bare loop of the same label and batch: from the
    cells' medians; with repeats also `step / bare step`, the median of the per-repeat ratios of
    step times (repeat k of the cell against repeat k of the bare loop, the same pass of the
    interleaved grid) with their range."""
    bare = {(row_label(r), r["batch"]): r for r in rows if r["config"] == "bare loop" and r["status"] == "ok"}
    for r in rows:
        b = bare.get((row_label(r), r["batch"]))
        if r["status"] == "ok" and r["config"] == configs.label(()) and b:
            r["vs bare"] = f"{100 * (1 - r['img/s'] / b['img/s']):+.1f}%"
            ratios = [x / y for x, y in zip(r["_run_img_s"], b["_run_img_s"]) if x and y]
            if len(ratios) > 1:
                r["step / bare step"] = (f"{float(np.median([1 / q for q in ratios])):.3f} "
                                        f"({1 / max(ratios):.3f}-{1 / min(ratios):.3f})")


def add_spec_comparison(rows: list[dict]) -> None:
    """`speed / spec` on every fast-path cell: its img/s over spec's at the same label and batch;
    with repeats the median of the per-repeat ratios (repeat k against repeat k, the same pass of
    the interleaved grid) with their range, as `step / bare step` pairs spec with the bare loop."""
    spec_label = configs.label(())
    spec = {(row_label(r), r["batch"]): r for r in rows if r["config"] == spec_label and r["status"] == "ok"}
    for r in rows:
        s = spec.get((row_label(r), r["batch"]))
        if r["status"] != "ok" or r["config"] in (spec_label, "bare loop") or not s:
            continue
        ratios = [x / y for x, y in zip(r["_run_img_s"], s["_run_img_s"]) if x and y]
        if len(ratios) > 1:
            r["speed / spec"] = f"{float(np.median(ratios)):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
        else:
            r["speed / spec"] = f"{r['img/s'] / s['img/s']:.2f}x"


if __name__ == "__main__":
    import benchmarks
    raise SystemExit(benchmarks.internal_entry("benchmarks.grid_rows", "the grid's rows and paired comparisons", "benchmarks.throughput -h"))
