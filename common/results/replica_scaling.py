"""Data-parallel tables and the scaling figure, generated from result files, never typed.

Efficiency against linear: img/s at N replicas / (N x img/s of the same backend at 1 replica),
both at the same global batch (each replica trains on 1/N of it), so 1.0 is perfect scaling.
"""
from __future__ import annotations

import statistics
from pathlib import Path

from common.results.figures import pyplot, save_figure


def _img_per_s(result: dict) -> float | None:
    return (result.get("summary") or {}).get("img_per_s_median") if result.get("status") == "ok" else None


def parallel_rows(results: dict) -> list[dict]:
    """One row per backend of a run with --devices > 1: what trained it, and how fast."""
    if results["config"].get("devices", 1) * results["config"].get("nodes", 1) <= 1:
        return []
    rows = []
    for name, r in results["backends"].items():
        p = r.get("parallel") or {}
        speed = _img_per_s(r)
        rows.append({"backend": name, "status": r["status"], "devices": p.get("devices", ""),
                     "replicas": p.get("replicas", ""), "engine": p.get("engine", ""),
                     "BN": p.get("batchnorm", ""),
                     "img/s": round(speed, 1) if speed else None,
                     "img/s per replica": round(speed / p["replicas"], 1) if speed and p.get("replicas") else None})
    return rows


def scaling_rows(runs: list[dict]) -> list[dict]:
    """Runs of the same job at several replica counts (repeated or not) -> per label (the
    backend's name, or NAME@ENV for one run in another Python environment) and replica count:
    the median img/s over its runs (with their range where repeated), speedup over the
    1-replica median and efficiency against linear. A row holds the plain name in "backend" and
    the label in "label", as results.json's rows do."""
    speeds: dict[str, dict[int, tuple[list[float], str]]] = {}
    plain: dict[str, str] = {}
    for results in runs:
        devices = results["config"].get("devices", 1)
        for label, r in results["backends"].items():
            speed = _img_per_s(r)
            if speed:
                replicas = (r.get("parallel") or {}).get("replicas", devices)
                engine = (r.get("parallel") or {}).get("engine", "single device")
                speeds.setdefault(label, {}).setdefault(replicas, ([], engine))[0].append(speed)
                plain[label] = r.get("backend") or label.partition("@")[0]
    rows = []
    for label, by_n in speeds.items():
        base = statistics.median(by_n[1][0]) if 1 in by_n else None
        for n in sorted(by_n):
            measured, engine = by_n[n]
            speed = statistics.median(measured)
            rows.append({"backend": plain[label], "label": label, "replicas": n, "engine": engine,
                         "img/s": round(speed, 1),
                         "range": f"{min(measured):.1f}-{max(measured):.1f}" if len(measured) > 1 else "",
                         "runs": len(measured),
                         "speedup": round(speed / base, 2) if base else None,
                         "efficiency": round(speed / (n * base), 2) if base else None})
    return rows


def scaling_chart(rows: list[dict], path: Path, context: str = ""):
    """img/s against replica count (with linear scaling from 1 replica dashed), and efficiency;
    context (dataset, preset, batch, iterations, device) under the title."""
    plt = pyplot()
    fig, (ax_speed, ax_eff) = plt.subplots(1, 2, figsize=(11, 4.6))
    for name in dict.fromkeys(r.get("label") or r["backend"] for r in rows):
        mine = [r for r in rows if (r.get("label") or r["backend"]) == name]
        n = [r["replicas"] for r in mine]
        line, = ax_speed.plot(n, [r["img/s"] for r in mine], marker="o", label=name)
        base = next((r["img/s"] for r in mine if r["replicas"] == 1), None)
        if base:
            ax_speed.plot(n, [base * k for k in n], linestyle="--", color=line.get_color(), alpha=0.5)
            ax_eff.plot(n, [r["efficiency"] for r in mine], marker="o", color=line.get_color(), label=name)
    ax_speed.set(title="img/s (dashed: linear from 1 replica)", xlabel="replicas",
                 ylabel="images / s, global batch (median over runs)")
    ax_eff.axhline(1.0, color="grey", linestyle="--", linewidth=0.8)
    ax_eff.set(title="efficiency against linear", xlabel="replicas",
               ylabel="img/s / (replicas x img/s at 1)", ylim=(0, 1.2))
    counts = sorted({r["replicas"] for r in rows})
    for ax in (ax_speed, ax_eff):
        ax.grid(alpha=0.3)
        ax.set_xticks(counts)  # replica counts are whole numbers
    fig.suptitle("Data-parallel scaling" + (f"\n{context}" if context else ""), fontsize=11)
    handles, labels = ax_speed.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=max(1, len(labels)), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    save_figure(fig, path)
    return fig
