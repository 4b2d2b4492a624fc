"""Figures of a run, drawn from its result files: sample grids, loss curves, bar charts and time
to quality; and the one matplotlib set-up every figure of the project uses (pyplot, save_figure)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from common import atomic


def pyplot():
    """matplotlib.pyplot on the file-only backend, imported on first use (a run that draws
    nothing never pays for it)."""
    import matplotlib
    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path: Path) -> None:
    """Write `fig` as a PNG atomically and close it."""
    plt = pyplot()
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


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
    plt = pyplot()
    with atomic.atomic_path(path) as tmp:
        plt.imsave(tmp, grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=255, format="png")


def save_grids_side_by_side(grids: dict[str, np.ndarray], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(grids), figsize=(4 * len(grids), 4.3), squeeze=False)
    for ax, (name, samples) in zip(axes[0], grids.items()):
        img = tile(samples)
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255)
        ax.set_title(name)
        ax.axis("off")
    fig.suptitle("Samples from the same fixed z")
    fig.tight_layout()
    save_figure(fig, path)


# ----- curves and charts -----
def loss_curves(losses: pd.DataFrame, path: Path) -> None:
    plt = pyplot()
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
    save_figure(fig, path)


def throughput_chart(rows: list[dict], path: Path) -> None:
    """Median img/s per backend with IQR bars, from tables.summary_rows."""
    rows = [r for r in rows if r.get("_median")]
    if not rows:
        return
    plt = pyplot()
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
    save_figure(fig, path)


def quality_chart(rows: list[dict], path: Path) -> None:
    """FD and classifier score per backend against the real-digit floor, from tables.quality_rows."""
    plt = pyplot()
    gen = [r for r in rows if "floor" not in r["samples"]]
    floor = [r for r in rows if "floor" in r["samples"]]
    fig, axes = plt.subplots(1, 2, figsize=(2.4 * len(gen) + 5, 3.6))
    x = np.arange(len(gen))
    names = [r["samples"] for r in gen]
    axes[0].bar(x, [r["_fd"] for r in gen], color="#DD8452", tick_label=names)
    axes[0].errorbar(x, [r["_fd"] for r in gen], yerr=[r["_fd_std"] for r in gen], fmt="none",
                     capsize=6, ecolor="black")
    axes[1].bar(x, [r["_score"] for r in gen], color="#55A868", tick_label=names)
    if floor:
        axes[0].axhline(floor[0]["_fd"], color="gray", linestyle="--", label="real-vs-real floor")
        axes[1].axhline(floor[0]["_score"], color="gray", linestyle="--", label="real digits")
        for ax in axes:
            ax.legend(fontsize=8)
    axes[0].set_title("Fréchet distance (lower is better; bootstrap std)")
    axes[1].set_title("Classifier score (higher is better, max 10)")
    for ax in axes:
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def time_to_quality_chart(results: dict, path: Path) -> bool:
    """FD of the fixed-z samples against training seconds; False (nothing drawn) without a curve."""
    curves = {n: r["quality_curve"] for n, r in results["backends"].items() if r.get("quality_curve")}
    if not curves:
        return False
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, curve in curves.items():
        ax.plot([c["train_seconds"] for c in curve], [c["fd"] for c in curve], marker="o", label=name)
    if results.get("quality_floor"):
        ax.axhline(results["quality_floor"]["fd"], color="gray", linestyle="--", label="real floor")
    ax.set_yscale("log")
    ax.set_xlabel("training seconds (step time; evaluation excluded)")
    ax.set_ylabel("FD of the fixed-z samples")
    ax.set_title("Time to quality")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    return True
