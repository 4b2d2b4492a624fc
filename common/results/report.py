"""Tables, figures and report.md, generated from a run folder's result files, never typed."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from common import atomic
from common.harness.steplog import LOSS_COLUMNS


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
    """Rows of dicts as a pandas-made table (keys starting with _ are data for figures)."""
    columns = list(dict.fromkeys(k for r in rows for k in r if not k.startswith("_")))
    # a cell a row does not have (a skipped cell's img/s) stays empty, not NaN
    visible = [{k: ("" if r.get(k) is None else r[k]) for k in columns} for r in rows]
    # numparse off: values formatted here ("3.0e-06", "100.00 ± 5.00") are shown as formatted
    return pd.DataFrame(visible).to_markdown(index=False, tablefmt=fmt, disable_numparse=True)


def stdout_table(results: dict) -> str:
    rows = summary_rows(results)
    lines = [table(rows, "simple")]
    for r in rows:  # skipped backends were announced as they were skipped
        if r["status"] not in ("ok", "skipped") and r["_reason"]:
            lines.append(f"  {r['backend']}: {r['status']}: {r['_reason']}")
    return "\n".join(lines)


# ----- losses -----
SMOOTH_FRACTION = 0.1  # "smoothed" losses: the mean over the last 10% of iterations


def loss_rows(losses: pd.DataFrame) -> list[dict]:
    rows = []
    for name, df in losses.groupby("backend", sort=False):
        df = df.sort_values("iteration")
        tail = df.tail(max(1, round(len(df) * SMOOTH_FRACTION)))
        rows.append({"backend": name, "iterations": len(df),
                     "final loss_D": round(df["loss_d"].iloc[-1], 4),
                     "final loss_G": round(df["loss_g"].iloc[-1], 4),
                     f"loss_D (last {len(tail)} mean)": round(tail["loss_d"].mean(), 4),
                     f"loss_G (last {len(tail)} mean)": round(tail["loss_g"].mean(), 4)})
    return rows


# ----- sample quality -----
# (column, key, digits); each value is shown as value ± its bootstrap/split spread.
QUALITY_COLUMNS = (("FD", "fd", 2), ("KID", "kid", 1), ("classifier score", "classifier_score", 2),
                   ("precision", "precision", 3), ("recall", "recall", 3),
                   ("density", "density", 3), ("coverage", "coverage", 3))


def _quality_row(label: str, q: dict) -> dict:
    row = {"samples": label}
    for column, key, digits in QUALITY_COLUMNS:
        row[column] = f"{q[key]:.{digits}f} ± {q[key + '_std']:.{digits}f}"
    row["modes"] = f"{q['modes_covered']}/{len(q['histogram'])}"
    row["KL to uniform"] = round(q["kl_to_uniform"], 3)
    row["_fd"], row["_fd_std"], row["_score"] = q["fd"], q["fd_std"], q["classifier_score"]
    return row


def quality_rows(results: dict) -> list[dict]:
    """One row per backend with quality numbers, then the real-vs-real floor."""
    if (results.get("quality_info") or {}).get("kind") == "fid":
        return []  # RGB runs: fid_lines
    rows = [_quality_row(name, r["quality"]) for name, r in results["backends"].items()
            if r.get("quality")]
    if rows and results.get("quality_floor"):
        rows.append(_quality_row("real digits (floor)", results["quality_floor"]))
    return rows


def quality_chart(rows: list[dict], path: Path) -> None:
    plt = _pyplot()
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
    _save_fig(fig, path)


def fid_lines(results: dict) -> list[str]:
    """RGB runs: the FID table with its real floor, or the one line saying why FID is missing."""
    if results.get("quality_unavailable"):
        return ["## Sample quality", "", results["quality_unavailable"], ""]
    if ((results.get("config") or {}).get("quality") or {}).get("kind") != "fid":
        return []
    errors = [f"- {name}: FID failed: {r['quality_error']}" for name, r in results["backends"].items()
              if r.get("quality_error")]
    info = results.get("quality_info")
    if not info:
        return ["## Sample quality (FID)", "", *(errors or ["No backend produced samples to score."]), ""]
    rows = [{"samples": name, "FID": f"{r['quality']['fid']:.1f} ± {r['quality']['fid_std']:.1f}",
             "N": r["quality"]["n"]} for name, r in results["backends"].items() if r.get("quality")]
    floor = results.get("quality_floor")
    if floor:
        rows.append({"samples": "real images (floor)", "FID": f"{floor['fid']:.1f} ± {floor['fid_std']:.1f}",
                     "N": floor["n"]})
    return ["## Sample quality (FID)", "",
            f"Fréchet Inception Distance of {info['samples']} samples per backend from the run's fixed "
            f"z (uint8 as a PNG stores them) against {info['reference']}; {info['network']}, "
            f"{info['convention']}. FID grows as N shrinks: compare only at the same N (the "
            f"published 50k-sample numbers are not comparable). ± is a {info['bootstrap_rounds']}-round "
            "seeded bootstrap std.", "", table(rows, "github") if rows else "", *errors, ""]


def time_to_quality_chart(results: dict, path: Path) -> bool:
    curves = {n: r["quality_curve"] for n, r in results["backends"].items() if r.get("quality_curve")}
    if not curves:
        return False
    plt = _pyplot()
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
    _save_fig(fig, path)
    return True


# ----- across training seeds -----
def seed_rows(results: dict) -> list[dict]:
    """Mean and spread across training seeds (GAN runs vary more between seeds than between
    evaluation resamples): one row per backend, over the seeds where it finished."""
    if not results.get("by_seed"):
        return []
    runs = [results["backends"], *results["by_seed"].values()]
    rows = []
    for name in results["backends"]:
        ok = [r[name] for r in runs if name in r and r[name].get("status") == "ok"]
        row = {"backend": name, "seeds ok": f"{len(ok)}/{len(runs)}"}
        for label, get, digits in (
                ("img/s", lambda r: (r.get("summary") or {}).get("img_per_s_median"), 1),
                ("final loss_D", lambda r: (r.get("final_losses") or {}).get("loss_d"), 3),
                ("final loss_G", lambda r: (r.get("final_losses") or {}).get("loss_g"), 3),
                ("FD", lambda r: (r.get("quality") or {}).get("fd"), 1),
                ("classifier score", lambda r: (r.get("quality") or {}).get("classifier_score"), 2)):
            values = [v for v in map(get, ok) if v is not None]
            row[label] = (f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"
                          if len(values) > 1 else (f"{values[0]:.{digits}f}" if values else ""))
        rows.append(row)
    return rows


# ----- parity of this run's backends (shared initial weights) -----
PARITY_ITERS = (5, 10)


def parity_rows(run_dir: Path, results: dict, losses: pd.DataFrame, reference: str = "pytorch") -> list[dict]:
    """Each backend against the reference from the same initial weights: the max abs difference
    of G(z) and D(x) before training (both BN modes), and of the first iterations' losses."""
    if not results["config"].get("shared_init"):
        return []
    ref_file = run_dir / "backends" / reference / "init_outputs.npz"
    if not ref_file.exists():
        return []
    with np.load(ref_file, allow_pickle=False) as f:
        ref_out = {k: f[k] for k in f.files}
    ref_loss = losses[losses["backend"] == reference].sort_values("iteration")
    rows = []
    for name in results["backends"]:
        f = run_dir / "backends" / name / "init_outputs.npz"
        if name == reference or not f.exists():
            continue
        with np.load(f, allow_pickle=False) as npz:
            row = {"backend": name,
                   "Adam": (results["backends"][name].get("conventions") or {}).get("adam", "?")}
            for key in ("G_eval", "G_train", "D_eval", "D_train"):
                row[f"max Δ {key.replace('_', ' ')}"] = f"{np.abs(npz[key] - ref_out[key]).max():.1e}"
        got = losses[losses["backend"] == name].sort_values("iteration")
        for n in PARITY_ITERS:
            a, b = ref_loss.head(n), got.head(n)
            if len(a) == len(b) == n:
                diff = np.abs(a[["loss_d", "loss_g"]].to_numpy() - b[["loss_d", "loss_g"]].to_numpy())
                row[f"max Δ loss, first {n}"] = f"{diff.max():.1e}"
        rows.append(row)
    return rows


# ----- comparing two runs -----
def compare_runs(a: dict, b: dict) -> str:
    """What changed from run a to run b, per backend present in either."""
    rows = []
    for name in dict.fromkeys([*a["backends"], *b["backends"]]):
        ra, rb = a["backends"].get(name, {}), b["backends"].get(name, {})
        row = {"backend": name, "status": f"{ra.get('status', '-')} -> {rb.get('status', '-')}"}
        sa, sb = (ra.get("summary") or {}).get("img_per_s_median"), (rb.get("summary") or {}).get("img_per_s_median")
        row["img/s"] = f"{_fmt(sa, 1)} -> {_fmt(sb, 1)}" + (f" ({(sb / sa - 1) * 100:+.1f}%)" if sa and sb else "")
        for key, label in (("loss_d", "final loss_D"), ("loss_g", "final loss_G")):
            va, vb = (ra.get("final_losses") or {}).get(key), (rb.get("final_losses") or {}).get(key)
            row[label] = f"{_fmt(va, 3)} -> {_fmt(vb, 3)}"
        qa, qb = ra.get("quality") or {}, rb.get("quality") or {}
        row["FD"] = f"{_fmt(qa.get('fd'), 2)} -> {_fmt(qb.get('fd'), 2)}"
        rows.append(row)
    head = []
    for key, label in (("config", "config"), ("provenance", "machine")):
        if key == "config":
            diff = {k: (a["config"].get(k), b["config"].get(k))
                    for k in sorted(set(a["config"]) | set(b["config"]))
                    if a["config"].get(k) != b["config"].get(k)}
        else:
            pa, pb = a.get("provenance") or {}, b.get("provenance") or {}
            diff = {k: (pa.get(k), pb.get(k)) for k in ("cpu", "gpus", "packages") if pa.get(k) != pb.get(k)}
        head += [f"{label} differs: {k}: {va} -> {vb}" for k, (va, vb) in diff.items()]
    return "\n".join(head + ([""] if head else []) + [table(rows, "simple")])


def _fmt(value, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


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
    quality = quality_rows(results)
    if quality:
        quality_chart(quality, run_dir / "quality.png")
        written.append(run_dir / "quality.png")
    if time_to_quality_chart(results, run_dir / "time_to_quality.png"):
        written.append(run_dir / "time_to_quality.png")
    from common.results import replica_scaling  # it draws with this module's helpers
    sections = {"losses": loss_rows(losses), "quality": quality, "seeds": seed_rows(results),
                "parity": parity_rows(run_dir, results, losses),
                "parallel": replica_scaling.parallel_rows(results)}
    atomic.write_text(run_dir / "report.md", report_markdown(results, rows, written, run_dir, sections))
    written.append(run_dir / "report.md")
    return written


def report_markdown(results: dict, rows: list[dict], figures: list[Path], run_dir: Path,
                    sections: dict | None = None) -> str:
    sections = sections or {}
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
    if sections.get("losses"):
        lines += ["## Losses", "", table(sections["losses"], "github"), ""]
    if sections.get("quality"):
        info = results.get("quality_info") or {}
        lines += ["## Sample quality", "",
                  f"{info.get('samples', '?')} samples per backend from the run's fixed z, quantised to "
                  "uint8 as a PNG stores them, scored with a numpy LeNet's features (classifier "
                  f"accuracy {info.get('classifier_accuracy', float('nan')):.1%} on held-out digits) "
                  f"against {info.get('reference', 'held-out real digits')}. ± is a seeded "
                  "bootstrap std (FD, precision/recall, density/coverage), subset std (KID) or "
                  "10-split std (classifier score). The floor row is what real digits score.", "",
                  table(sections["quality"], "github"), ""]
    if sections.get("seeds"):
        seeds = results["config"].get("seeds")
        lines += ["## Across training seeds", "",
                  f"Seeds {', '.join(map(str, seeds))}: mean ± std across seeds (each seed's "
                  "own init, noise and data order); the sections above show the first seed.", "",
                  table(sections["seeds"], "github"), ""]
    if sections.get("parity"):
        lines += ["## Parity in this run", "",
                  "Every backend against this run's PyTorch from the same initial weights: outputs "
                  "of G and D before training (BN with running or batch statistics; float32 "
                  "rounding, bound ~1e-5) and the first iterations' losses (same data and noise). "
                  "The loss differences also hold two real effects: Adam's eps placement (the "
                  "'folded' convention of Keras, MXNet and Chainer moves PyTorch's own losses by "
                  "~2e-3 within 5 iterations) and float32 rounding amplified by Adam's sign-like "
                  "first steps (float32 PyTorch drifts ~1e-3 from a float64 run within 5). The "
                  "test suite holds each backend to PyTorch in float64 in its own convention "
                  "(tests/test_cli.py).", "",
                  table(sections["parity"], "github"), ""]
    if sections.get("parallel"):
        lines += ["## Data parallel", "",
                  f"{cfg['devices'] * cfg.get('nodes', 1)} replicas ({cfg['devices']} per host): "
                  f"each trains on 1/{cfg['devices'] * cfg.get('nodes', 1)} of every "
                  f"batch of {cfg['batch_size']} with its framework's own engine; img/s is the "
                  "global batch's. Per-replica BN normalises over each replica's slice, so the "
                  "losses differ from a 1-device run of the same batch (README 'Data parallel'). "
                  "Scaling across replica counts: `python -m benchmarks.scaling`.", "",
                  table(sections["parallel"], "github"), ""]
    lines += fid_lines(results)
    problems = [r for r in rows if r["status"] != "ok"]
    if problems:
        lines += ["## Skipped or failed", ""] + [f"- **{r['backend']}** ({r['status']}): {r['_reason']}"
                                     for r in problems] + [""]
    figs = [f for f in figures if f.suffix == ".png"]
    if figs:
        lines += ["## Figures", ""] + [f"![{f.stem}]({f.relative_to(run_dir)})" for f in figs] + [""]
    return "\n".join(lines)
