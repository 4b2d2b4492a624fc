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
        fig.savefig(tmp, dpi=DPI, format="png")
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


def run_context(results: dict) -> str:
    """What every figure names under its title: dataset, preset, batch, iterations, device."""
    cfg, ds = results.get("config") or {}, results.get("dataset") or {}
    devices = sorted({(r.get("device") or {}).get("device") for r in results["backends"].values()
                      if (r.get("device") or {}).get("device")}) or [cfg.get("device", "?")]
    prov = results.get("provenance") or {}
    where = ", ".join(prov["gpus"]) if "gpu" in devices and prov.get("gpus") else prov.get("cpu")
    # a run that stopped early (interrupted, failed) is titled with the iterations it did
    done = sorted({r["iterations_done"] for r in results["backends"].values()
                   if isinstance(r.get("iterations_done"), int) and r.get("status") != "skipped"})
    iters = (f"{cfg.get('iters')} iterations" if not done or done == [cfg.get("iters")]
             else f"{done[0] if len(done) == 1 else f'{done[0]}-{done[-1]}'} of {cfg.get('iters')} iterations done")
    return (f"{ds.get('name', cfg.get('dataset'))}, preset {cfg.get('preset')}, batch "
            f"{cfg.get('batch_size')}, {iters}, {'/'.join(devices)}"
            + (f" ({where})" if where else ""))


def figure_title(fig, what: str, context: str) -> None:
    fig.suptitle(f"{what}\n{context}" if context else what, fontsize=11)


def legend_below(fig, ax, columns: int) -> None:
    """One legend for the figure, below the axes: never over the data."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(columns, 5), fontsize=8,
                   frameon=False)


DPI = 110  # every figure's; save_figure writes at it
GRID_MARGIN, GRID_TITLE = 10, 60  # pixels around a grid, and above it for its title


def save_grid(samples: np.ndarray, path: Path, title: str = "", context: str = "", scale: int = 3):
    """One backend's 8x8 grid, each pixel shown as scale x scale (readable at a glance, never
    resampled), under a title naming the backend, the iteration and the run."""
    plt = pyplot()
    grid = tile(samples).repeat(scale, axis=0).repeat(scale, axis=1)
    h, w = grid.shape[:2]
    width, height = w + 2 * GRID_MARGIN, h + 2 * GRID_MARGIN + GRID_TITLE
    fig = plt.figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    ax = fig.add_axes((GRID_MARGIN / width, GRID_MARGIN / height, w / width, h / height))
    ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
    ax.axis("off")
    fig.suptitle(f"{title or 'samples from the fixed z'}\n{context}" if context else
                 (title or "samples from the fixed z"), fontsize=9, y=1 - 6 / height, va="top")
    save_figure(fig, path)
    return fig


def save_grids_side_by_side(grids: dict[str, np.ndarray], path: Path, iterations: dict | None = None,
                            context: str = ""):
    plt = pyplot()
    iterations = iterations or {}
    fig, axes = plt.subplots(1, len(grids), figsize=(max(4 * len(grids), 8), 4.9), squeeze=False)
    for ax, (name, samples) in zip(axes[0], grids.items()):
        img = tile(samples)
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(f"{name}, iteration {iterations[name]}" if name in iterations else name)
        ax.axis("off")
    its = set(iterations.values())
    figure_title(fig, "Samples from the same fixed z"
           + (f" after {its.pop()} iterations" if len(its) == 1 else ""), context)
    fig.tight_layout()
    save_figure(fig, path)
    return fig


# ----- curves and charts -----
def loss_curves(losses: pd.DataFrame, path: Path, context: str = ""):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), sharex=True)
    window = 1
    for ax, column, label in zip(axes, ("loss_d", "loss_g"), ("loss_D", "loss_G")):
        for name, df in losses.groupby("backend", sort=False):
            df = df.sort_values("iteration")
            line, = ax.plot(df["iteration"], df[column], alpha=0.25, linewidth=0.8)
            window = max(1, len(df) // 25)
            ax.plot(df["iteration"], df[column].rolling(window, min_periods=1).mean(),
                    color=line.get_color(), label=name)
        ax.set_title(f"{label} (thin: every step; thick: rolling mean of {window})", fontsize=9)
        ax.set_xlabel("iteration")
        ax.set_ylabel(f"{label} (binary cross-entropy, nats)")
        ax.grid(alpha=0.3)
    figure_title(fig, "Losses", context)
    legend_below(fig, axes[0], losses["backend"].nunique())
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    save_figure(fig, path)
    return fig


def throughput_chart(rows: list[dict], path: Path, context: str = ""):
    """Median img/s per backend with IQR bars and its value printed, from tables.summary_rows;
    a band marks the measured run-to-run spread below the fastest: a bar reaching it is within
    noise of the fastest (tables.RUN_TO_RUN_SPREAD), so one run does not rank them."""
    from common.results.tables import RUN_TO_RUN_MEASURED, RUN_TO_RUN_SPREAD
    rows = [r for r in rows if r.get("_median")]
    if not rows:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(1.6 * len(rows) + 3, 7), 5.0))
    med = np.array([r["_median"] for r in rows])
    lo = med - np.array([r["_iqr"][0] for r in rows])
    hi = np.array([r["_iqr"][1] for r in rows]) - med
    x = np.arange(len(rows))
    best = med.max()
    # over the bars, translucent: a bar whose top is shaded is within noise of the fastest
    ax.axhspan(best / (1 + RUN_TO_RUN_SPREAD), best, facecolor="#DD8452", alpha=0.35, zorder=3,
               edgecolor="#C44E52", linestyle="--",
               label=f"run-to-run spread (measured: two runs of one command differed\nby up "
                     f"to {RUN_TO_RUN_SPREAD:.0%}; {RUN_TO_RUN_MEASURED.split('#')[0]}): a bar "
                     "reaching\nthis band below the fastest is within noise of it")
    bars = ax.bar(x, med, color="#4C72B0", tick_label=[r["backend"] for r in rows], zorder=1)
    # errorbar separately: bar(yerr=2xN) trips a numpy deprecation inside matplotlib 3.11
    ax.errorbar(x, med, yerr=np.array([lo, hi]), fmt="none", capsize=6, ecolor="black", zorder=4,
                label="IQR of the steps within this run")
    ax.bar_label(bars, labels=[f"{m:.1f}" for m in med], label_type="center", color="white",
                 fontsize=9, fontweight="bold")
    ax.set_ylabel("images / s (median; bars: IQR)")
    ax.set_xlabel("backend")
    ax.grid(axis="y", alpha=0.3)
    figure_title(fig, "Training throughput (warm-up excluded)", context)
    fig.tight_layout(rect=(0, 0.17, 1, 1))  # room for the legend below
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=1, fontsize=8, frameon=False)
    save_figure(fig, path)
    return fig


def quality_chart(rows: list[dict], path: Path, context: str = "", seeds: list[dict] | None = None,
                  seed_std: dict | None = None):
    """FD (log axis, the real floor visible) and classifier score per backend against the
    real-digit floor, from tables.quality_rows. Every seed is a point (seeds: seeds.seed_rows,
    whose _fds are each backend's FD per seed), the bar their mean; with one seed the whisker
    is the seed study's std at this setting where one matches (seed_std: backend -> std), never
    the evaluator's bootstrap error alone, which is far below what moves between runs."""
    plt = pyplot()
    gen = [r for r in rows if "floor" not in r["samples"]]
    floor = [r for r in rows if "floor" in r["samples"]]
    per_seed = {r["backend"]: r["_fds"] for r in seeds or [] if r.get("_fds")}
    fig, axes = plt.subplots(1, 2, figsize=(max(2.4 * len(gen) + 5, 10), 4.6))
    x = np.arange(len(gen))
    names = [r["samples"] for r in gen]
    points = [per_seed.get(n) or [r["_fd"]] for n, r in zip(names, gen)]
    fd = np.array([np.mean(p) for p in points])
    bars = axes[0].bar(x, fd, color="#DD8452", alpha=0.45, tick_label=names,
                       label="mean over seeds" if per_seed else "this seed")
    for i, p in enumerate(points):
        jitter = np.linspace(-0.18, 0.18, len(p)) if len(p) > 1 else [0.0]
        axes[0].scatter(i + np.asarray(jitter), p, color="#8C3B0C", s=18, zorder=3,
                        label="one training seed" if i == 0 else None)
    if per_seed:
        err = [np.std(p, ddof=1) if len(p) > 1 else 0 for p in points]
        axes[0].errorbar(x, fd, yerr=err, fmt="none", capsize=6, ecolor="black",
                         label="± std across seeds")
    elif seed_std:
        err = [seed_std.get(n) or 0 for n in names]
        axes[0].errorbar(x, fd, yerr=err, fmt="none", capsize=6, ecolor="black",
                         label="± seed std measured at this setting (seed study)")
    axes[0].bar_label(bars, labels=[f"{v:.1f}" for v in fd], label_type="center", color="black",
                      fontsize=9, fontweight="bold")
    scores = [r["_score"] for r in gen]
    bars = axes[1].bar(x, scores, color="#55A868", tick_label=names)
    axes[1].bar_label(bars, labels=[f"{v:.2f}" for v in scores], padding=2, fontsize=8)
    axes[0].set_yscale("log")
    low = min([*np.concatenate([np.asarray(p, float) for p in points]), *(f["_fd"] for f in floor)]) / 2
    high = max(max(p) for p in points) + max((seed_std or {}).values(), default=0)
    axes[0].set_ylim(low, high * 3)  # the floor and every point on the axis
    axes[1].set_ylim(0, 10.5)
    if floor:
        axes[0].axhline(floor[0]["_fd"], color="gray", linestyle="--",
                        label=f"real-vs-real floor (FD {floor[0]['_fd']:.1f}, score {floor[0]['_score']:.2f})")
        axes[1].axhline(floor[0]["_score"], color="gray", linestyle="--")
    axes[0].set_title("Fréchet distance (lower is better)" + ("" if per_seed or seed_std else
                      ": one seed, seed spread not measured"), fontsize=9)
    axes[1].set_title("Classifier score (higher is better, max 10)" + (": first seed" if per_seed else ""),
                      fontsize=9)
    axes[0].set_ylabel("FD of classifier features (log axis)")
    axes[1].set_ylabel("classifier score (effective classes)")
    for ax in axes:
        ax.grid(axis="y", alpha=0.3)
    figure_title(fig, "Sample quality against real digits", context)
    legend_below(fig, axes[0], 2)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    save_figure(fig, path)
    return fig


def time_to_quality_chart(results: dict, path: Path, context: str = ""):
    """FD of the fixed-z samples against training seconds; None (nothing drawn) without a curve:
    a run stopped before its second check (an interrupt before iteration K) has one point a
    backend, which is no curve, so it gets no figure."""
    curves = {n: r["quality_curve"] for n, r in results["backends"].items() if r.get("quality_curve")}
    if not any(len(c) > 1 for c in curves.values()):
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for name, curve in curves.items():
        ax.plot([c["train_seconds"] for c in curve], [c["fd"] for c in curve], marker="o", label=name)
    if results.get("quality_floor"):
        floor = results["quality_floor"]["fd"]
        ax.axhline(floor, color="gray", linestyle="--", label=f"real floor (FD {floor:.1f})")
    ax.set_yscale("log")
    ax.set_xlim(left=0)
    ax.set_xlabel("training seconds (step time; evaluation excluded)")
    ax.set_ylabel("FD of the fixed-z samples (log axis)")
    ax.grid(alpha=0.3)
    figure_title(fig, "Time to quality (a point every K iterations, the first at iteration 0)", context)
    legend_below(fig, ax, len(curves) + 1)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    save_figure(fig, path)
    return fig
