"""Tables of a run, as rows of dicts computed from its result files, and the one renderer.

A row's keys are its columns in order; a key starting with _ is data for a figure, never shown.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from common.results.schema import LOSS_COLUMNS, TAIL_FRACTION, label_folder


def table(rows: list[dict], fmt: str) -> str:
    """Rows of dicts as a pandas-made table (keys starting with _ are data for figures)."""
    columns = list(dict.fromkeys(k for r in rows for k in r if not k.startswith("_")))
    # a cell a row does not have (a skipped cell's img/s) stays empty, not NaN
    visible = [{k: ("" if r.get(k) is None else r[k]) for k in columns} for r in rows]
    # numparse off: values formatted here ("3.0e-06", "100.00 ± 5.00") are shown as formatted
    return pd.DataFrame(visible).to_markdown(index=False, tablefmt=fmt, disable_numparse=True)


# ----- the summary: one row per backend -----
def summary_rows(results: dict) -> list[dict]:
    rows = []
    for name, r in results["backends"].items():
        s = r.get("summary") or {}
        mem = s.get("peak_memory") or {}
        dev = r.get("device") or {}
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
            "load": _load_cell(r.get("machine_load")),
            **headline_losses(r),
            "_median": s.get("img_per_s_median"),
            "_iqr": s.get("img_per_s_iqr"),
            "_reason": r.get("reason"),
        })
    return rows


def _load_cell(load: dict | None) -> str:
    if not load or load.get("load1_before") is None:
        return ""
    steal = load.get("cpu_steal_fraction")
    return (f"{load['load1_before']:.1f} -> {load['load1_after']:.1f}"
            + (f" ({steal:.0%} stolen)" if steal and steal >= 0.005 else ""))


def headline_losses(r: dict) -> dict:
    """The losses a reader should quote: mean ± std over the last 10% of iterations; the last
    step's only as such (a GAN's per-step losses swing widely). Old results have only the last."""
    tail, fl = r.get("loss_tail"), r.get("final_losses") or {}
    cells = {}
    if tail:
        cells["loss_D (last 10%)"] = f"{tail['loss_d_mean']:.3f} ± {tail['loss_d_std']:.3f}"
        cells["loss_G (last 10%)"] = f"{tail['loss_g_mean']:.3f} ± {tail['loss_g_std']:.3f}"
    cells["last step D / G"] = f"{fl['loss_d']:.3f} / {fl['loss_g']:.3f}" if fl else None
    return cells


BUSY_MARGIN = 1.0  # load above --threads that is still this run alone (harness, OS, decay)


def busy_warnings(results: dict) -> list[str]:
    """A line per backend whose run shared the machine: the 1-minute load average before or
    after it above its thread count plus one. Its own threads count in the value after, and the
    previous backend's in the value before (the average decays over minutes): a 2-thread run
    alone on 2 cores measured 1.9-2.2 in both, which is not busy; a second job makes it 3+."""
    threads = (results.get("config") or {}).get("threads")
    lines = []
    for name, r in results["backends"].items():
        load = r.get("machine_load") or {}
        worst = max((v for v in (load.get("load1_before"), load.get("load1_after")) if v is not None),
                    default=None)
        if threads and worst is not None and worst > threads + BUSY_MARGIN:
            steal = load.get("cpu_steal_fraction")
            lines.append(f"warning: {name} ran on a busy machine: load average "
                         f"{load.get('load1_before', 0):.1f} before, {load.get('load1_after', 0):.1f} after, "
                         f"for {threads} threads"
                         + (f", {steal:.0%} CPU stolen" if steal and steal >= 0.005 else "")
                         + "; its img/s is lower than on an idle machine")
    return lines


def stdout_table(results: dict) -> str:
    """The summary as run_all.py prints it at the end of a run."""
    rows = summary_rows(results)
    lines = [table(rows, "simple")]
    for r in rows:  # skipped backends were announced as they were skipped
        if r["status"] not in ("ok", "skipped") and r["_reason"]:
            lines.append(f"  {r['backend']}: {r['status']}: {r['_reason']}")
    return "\n".join(lines + busy_warnings(results))


# ----- losses -----
SMOOTH_FRACTION = TAIL_FRACTION  # "smoothed" losses: the mean over the last 10% of iterations


def read_losses(run_dir: Path, names) -> pd.DataFrame:
    """The backends' losses.csv of a run folder as one frame (empty, with the columns, if none)."""
    frames = []
    for name in names:
        f = run_dir / "backends" / label_folder(name) / "losses.csv"
        if f.exists() and f.stat().st_size:  # keyed by the folder's label ('jax@newest'):
            frames.append(pd.read_csv(f).assign(backend=name))  # the file holds the plain name
    if not frames:
        return pd.DataFrame(columns=list(LOSS_COLUMNS))
    return pd.concat(frames, ignore_index=True)


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
QUALITY_COLUMNS = (("FD", "fd", 2), ("KID (MMD²)", "kid", 1), ("classifier score", "classifier_score", 2),
                   ("precision", "precision", 3), ("recall", "recall", 3),
                   ("density", "density", 3), ("coverage", "coverage", 3))


def spread(q: dict, key: str, digits: int) -> str:
    """A quality measure as shown: its value ± its spread (q[key + '_std'])."""
    return f"{q[key]:.{digits}f} ± {q[key + '_std']:.{digits}f}"


def _quality_row(label: str, q: dict) -> dict:
    row = {"samples": label}
    for column, key, digits in QUALITY_COLUMNS:
        row[column] = spread(q, key, digits)
    row["modes"] = f"{q['modes_covered']}/{len(q['histogram'])}"
    row["KL to uniform"] = round(q["kl_to_uniform"], 3)
    row["_fd"], row["_fd_std"], row["_score"] = q["fd"], q["fd_std"], q["classifier_score"]
    return row


# Mode collapse: few kinds of digit drawn well. Precision (samples near real digits) stays high
# while recall or coverage (real digits near samples) fall: flagged when precision is at least
# COLLAPSE_PRECISION and recall or coverage is under COLLAPSE_FRACTION of the real floor's.
COLLAPSE_PRECISION, COLLAPSE_FRACTION = 0.8, 0.5


def collapse_flag(q: dict, floor: dict | None) -> str:
    ref = floor or {"recall": 0.8, "coverage": 0.8}  # no floor: typical real-vs-real values
    low = [k for k in ("recall", "coverage") if q[k] < COLLAPSE_FRACTION * ref[k]]
    if q["precision"] >= COLLAPSE_PRECISION and low:
        return f"mode collapse? high precision, low {' and '.join(low)}"
    return ""


def quality_rows(results: dict) -> list[dict]:
    """One row per backend with quality numbers, then the real-vs-real floor."""
    if (results.get("quality_info") or {}).get("kind") == "fid":
        return []  # RGB runs: markdown.fid_lines
    floor = results.get("quality_floor")
    rows = []
    for name, r in results["backends"].items():
        if r.get("quality"):
            rows.append(_quality_row(name, r["quality"]))
            rows[-1]["note"] = collapse_flag(r["quality"], floor)
    if rows and floor:
        rows.append(_quality_row("real digits (floor)", floor))
        rows[-1]["note"] = "KID < 0: chance (read as 0)" if floor["kid"] < 0 else ""
    return rows


def fid_rows(results: dict) -> list[dict]:
    """RGB runs: FID per backend with its N, then the real-images floor."""
    rows = [{"samples": name, "FID": f"{r['quality']['fid']:.1f} ± {r['quality']['fid_std']:.1f}",
             "N": r["quality"]["n"]} for name, r in results["backends"].items() if r.get("quality")]
    floor = results.get("quality_floor")
    if floor:
        rows.append({"samples": "real images (floor)", "FID": f"{floor['fid']:.1f} ± {floor['fid_std']:.1f}",
                     "N": floor["n"]})
    return rows


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
    ref_file = run_dir / "backends" / label_folder(reference) / "init_outputs.npz"
    if not ref_file.exists():
        return []
    with np.load(ref_file, allow_pickle=False) as f:
        ref_out = {k: f[k] for k in f.files}
    ref_loss = losses[losses["backend"] == reference].sort_values("iteration")
    rows = []
    for name in results["backends"]:
        f = run_dir / "backends" / label_folder(name) / "init_outputs.npz"
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
