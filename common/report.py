"""Tables, figures and report.md, generated from a run folder's result files, never typed."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from common import atomic
from common.steplog import LOSS_COLUMNS


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt
    return plt


# ----- sample grids -----
def tile(samples: np.ndarray, columns: int = 8, gap: int = 2) -> np.ndarray:
    """uint8 NCHW -> one HxW (grey) or HxWx3 image, with a white gap between tiles."""
    n, c, h, w = samples.shape
    rows = -(-n // columns)
    grid = np.full((rows * (h + gap) + gap, columns * (w + gap) + gap, c), 255, np.uint8)
    for i, img in enumerate(samples):
        r, col = divmod(i, columns)
        y, x = gap + r * (h + gap), gap + col * (w + gap)
        grid[y:y + h, x:x + w] = img.transpose(1, 2, 0)
    return grid[..., 0] if c == 1 else grid


def save_grid(samples: np.ndarray, path: Path, scale: int = 3) -> None:
    grid = tile(samples)
    grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)  # readable at a glance
    plt = _pyplot()
    with atomic.atomic_path(path) as tmp:
        plt.imsave(tmp, grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=255, format="png")


def save_grids_side_by_side(grids: dict[str, np.ndarray], path: Path) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(grids), figsize=(4 * len(grids), 4.3), squeeze=False)
    for ax, (name, samples) in zip(axes[0], grids.items()):
        img = tile(samples)
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255)
        ax.set_title(name)
        ax.axis("off")
    fig.suptitle("Samples from the same fixed z")
    fig.tight_layout()
    _save_fig(fig, path)


# ----- figures -----
def _save_fig(fig, path: Path) -> None:
    plt = _pyplot()
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def loss_curves(losses: pd.DataFrame, path: Path) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharex=True)
    for ax, column, title in zip(axes, ("loss_d", "loss_g"), ("loss_D", "loss_G")):
        for name, df in losses.groupby("backend", sort=False):
            df = df.sort_values("iteration")
            line, = ax.plot(df["iteration"], df[column], alpha=0.25, linewidth=0.8)
            window = max(1, len(df) // 25)
            ax.plot(df["iteration"], df[column].rolling(window, min_periods=1).mean(),
                    color=line.get_color(), label=f"{name} (rolling mean {window})")
        ax.set_title(title)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    _save_fig(fig, path)


def throughput_chart(rows: list[dict], path: Path) -> None:
    rows = [r for r in rows if r.get("_median")]
    if not rows:
        return
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.6 * len(rows) + 3, 3.6))
    med = np.array([r["_median"] for r in rows])
    lo = med - np.array([r["_iqr"][0] for r in rows])
    hi = np.array([r["_iqr"][1] for r in rows]) - med
    x = np.arange(len(rows))
    ax.bar(x, med, color="#4C72B0", tick_label=[r["backend"] for r in rows])
    # errorbar separately: bar(yerr=2xN) trips a numpy deprecation inside matplotlib 3.11
    ax.errorbar(x, med, yerr=np.array([lo, hi]), fmt="none", capsize=6, ecolor="black")
    ax.set_ylabel("images / s (median, IQR bars)")
    ax.set_title("Training throughput")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    _save_fig(fig, path)


# ----- tables -----
def summary_rows(results: dict) -> list[dict]:
    rows = []
    for name, r in results["backends"].items():
        s = r.get("summary") or {}
        mem = s.get("peak_memory") or {}
        dev = r.get("device") or {}
        fl = r.get("final_losses") or {}
        rows.append({
            "backend": name,
            "status": r["status"],
            "device": dev.get("device", ""),
            "iters": r.get("iterations_done", ""),
            "img/s": round(s["img_per_s_median"], 1) if "img_per_s_median" in s else None,
            "IQR": (f"{s['img_per_s_iqr'][0]:.1f}-{s['img_per_s_iqr'][1]:.1f}"
                    if "img_per_s_iqr" in s else ""),
            "first step s": round(s["first_step_seconds"], 3) if "first_step_seconds" in s else None,
            "peak MiB": (f"{mem['bytes'] / 2**20:.0f} ({mem['kind']})" if mem else ""),
            "loss_D": round(fl["loss_d"], 3) if fl else None,
            "loss_G": round(fl["loss_g"], 3) if fl else None,
            "_median": s.get("img_per_s_median"),
            "_iqr": s.get("img_per_s_iqr"),
            "_reason": r.get("reason"),
        })
    return rows


def table(rows: list[dict], fmt: str) -> str:
    from tabulate import tabulate
    visible = [{k: ("" if v is None else v) for k, v in r.items() if not k.startswith("_")}
               for r in rows]
    return tabulate(visible, headers="keys", tablefmt=fmt)


def stdout_table(results: dict) -> str:
    rows = summary_rows(results)
    lines = [table(rows, "simple")]
    for r in rows:  # skipped backends were announced as they were skipped
        if r["status"] not in ("ok", "skipped") and r["_reason"]:
            lines.append(f"  {r['backend']}: {r['status']}: {r['_reason']}")
    return "\n".join(lines)


# ----- the whole report -----
def read_losses(run_dir: Path, names) -> pd.DataFrame:
    frames = []
    for name in names:
        f = run_dir / "backends" / name / "losses.csv"
        if f.exists() and f.stat().st_size:
            frames.append(pd.read_csv(f))
    if not frames:
        return pd.DataFrame(columns=list(LOSS_COLUMNS))
    return pd.concat(frames, ignore_index=True)


def write_report(run_dir: Path, results: dict) -> list[Path]:
    """losses.csv, sample grids, plots and report.md from the run folder; returns what it wrote."""
    written = []
    names = list(results["backends"])
    losses = read_losses(run_dir, names)
    with atomic.atomic_path(run_dir / "losses.csv") as tmp:
        losses.to_csv(tmp, index=False, columns=list(LOSS_COLUMNS))
    written.append(run_dir / "losses.csv")

    grids = {}
    for name in names:
        f = run_dir / "backends" / name / "samples.npy"
        if f.exists():
            grids[name] = np.load(f, allow_pickle=False)
            save_grid(grids[name], run_dir / f"samples_{name}.png")
            written.append(run_dir / f"samples_{name}.png")
    if len(grids) > 1:
        save_grids_side_by_side(grids, run_dir / "samples.png")
        written.append(run_dir / "samples.png")
    if len(losses):
        loss_curves(losses, run_dir / "loss_curves.png")
        written.append(run_dir / "loss_curves.png")
    rows = summary_rows(results)
    if any(r["img/s"] for r in rows):
        throughput_chart(rows, run_dir / "throughput.png")
        written.append(run_dir / "throughput.png")
    atomic.write_text(run_dir / "report.md", report_markdown(results, rows, written, run_dir))
    written.append(run_dir / "report.md")
    return written


def report_markdown(results: dict, rows: list[dict], figures: list[Path], run_dir: Path) -> str:
    cfg, prov, ds = results["config"], results["provenance"], results.get("dataset") or {}
    pk = prov.get("packages", {})
    lines = [
        "# dcgan-bench run",
        "",
        f"`{results['command']}`",
        "",
        f"- dataset: **{ds.get('name', cfg['dataset'])}** ({ds.get('n', '?')} images"
        + (f"; {ds['warning']}" if ds.get("warning") else "") + ")",
        f"- preset {cfg['preset']}, {cfg['iters']} iterations, batch {cfg['batch_size']}, "
        f"seed {cfg['seed']}, shared init: {cfg['shared_init']}, device: {cfg['device']}",
        f"- machine: {prov.get('cpu')} ({prov.get('cpu_count')} logical CPUs)"
        + (f", GPUs: {', '.join(prov['gpus'])}" if prov.get("gpus") else ", no GPU"),
        f"- software: Python {prov.get('python')}, "
        + ", ".join(f"{k} {v}" for k, v in pk.items()),
        f"- git: {(prov.get('git') or {}).get('commit')}"
        + (" (dirty)" if (prov.get("git") or {}).get("dirty") else ""),
        "",
        "## Results",
        "",
        "img/s is the median over timed steps (warm-up excluded; first step shown separately), "
        "IQR its interquartile range.",
        "",
        table(rows, "github"),
        "",
    ]
    problems = [r for r in rows if r["status"] != "ok"]
    if problems:
        lines += ["## Skipped or failed", ""] + [f"- **{r['backend']}** ({r['status']}): {r['_reason']}"
                                     for r in problems] + [""]
    figs = [f for f in figures if f.suffix == ".png"]
    if figs:
        lines += ["## Figures", ""] + [f"![{f.stem}]({f.relative_to(run_dir)})" for f in figs] + [""]
    return "\n".join(lines)


def load_results(path: Path) -> dict:
    return json.loads(Path(path).read_text())
