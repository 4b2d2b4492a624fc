"""Tables of a run, as rows of dicts computed from its result files, and the one renderer.

A row's keys are its columns in order; a key starting with _ is data for a figure, never shown.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from common.results import seed_spread, seeds
from common.results.schema import LOSS_COLUMNS, TAIL_FRACTION, label_folder, seed_runs


def table(rows: list[dict], fmt: str) -> str:
    """Rows of dicts as a pandas-made table (keys starting with _ are data for figures)."""
    columns = list(dict.fromkeys(k for r in rows for k in r if not k.startswith("_")))
    # a cell a row does not have (a skipped cell's img/s) stays empty, not NaN
    visible = [{k: ("" if r.get(k) is None else r[k]) for k in columns} for r in rows]
    # numparse off: values formatted here ("3.0e-06", "100.00 ± 5.00") are shown as formatted
    return pd.DataFrame(visible).to_markdown(index=False, tablefmt=fmt, disable_numparse=True)


def without_plain_labels(rows: list[dict]) -> list[dict]:
    """Rows with a "label" beside "backend" (NAME@ENV for a backend run in another Python
    environment) as a table shows them: the label column only where some row's label is not its
    plain backend name."""
    if any(r.get("label", r.get("backend")) != r.get("backend") for r in rows):
        return rows
    return [{k: v for k, v in r.items() if k != "label"} for r in rows]


# ----- run-to-run spread: the one source for the report, throughput.png and --compare -----
# Two single runs of the same command minutes apart on the shared 2-core development VM differed
# by up to ~25% in img/s (430 and 668 for the same code).
RUN_TO_RUN_SPREAD = 0.25
RUN_TO_RUN_MEASURED = "benchmarks/README.md#run-to-run-spread-on-the-development-vm-measured"


def noise_verdict(a: dict, b: dict, spread: float = RUN_TO_RUN_SPREAD) -> str:
    """'beyond noise' only when the two runs' img/s IQRs do not overlap AND the medians differ
    by more than the run-to-run spread (relative to the slower); else 'within noise'. The rule
    is documented in docs/outputs.md#noise."""
    ma, mb = a.get("img_per_s_median"), b.get("img_per_s_median")
    ia, ib = a.get("img_per_s_iqr"), b.get("img_per_s_iqr")
    if not (ma and mb and ia and ib):
        return ""
    disjoint = ia[1] < ib[0] or ib[1] < ia[0]
    return "beyond noise" if disjoint and abs(mb - ma) / min(ma, mb) > spread else "within noise"


def vs_fastest_cells(rows: list[dict]) -> None:
    """Each row's img/s against the run's fastest, 'within noise' or 'beyond noise' by --compare's
    rule (IQRs overlap or the medians within RUN_TO_RUN_SPREAD); nothing with under two backends."""
    timed = [r for r in rows if r.get("_median") and r.get("_iqr")]
    if len(timed) < 2:
        return
    best = max(timed, key=lambda r: r["_median"])
    fast = {"img_per_s_median": best["_median"], "img_per_s_iqr": best["_iqr"]}
    for r in timed:
        cell = ("fastest" if r is best else
                f"{(r['_median'] / best['_median'] - 1) * 100:+.0f}%, " + noise_verdict(
                    fast, {"img_per_s_median": r["_median"], "img_per_s_iqr": r["_iqr"]}))
        items = list(r.items())  # the column goes beside the IQR
        at = [k for k, _ in items].index("IQR") + 1 if "IQR" in r else len(items)
        r.clear()
        r.update(items[:at] + [("vs fastest", cell)] + items[at:])


def spread_line(rows: list[dict]) -> str:
    """The sentence under the throughput table: the measured spread, and which backends it
    leaves unranked against the fastest."""
    line = (f"Run-to-run spread: two runs of one command differed by up to {RUN_TO_RUN_SPREAD:.0%} "
            f"in img/s (measured: {RUN_TO_RUN_MEASURED}), far more than an IQR.")
    tied = [r["backend"] for r in rows if str(r.get("vs fastest", "")).endswith("within noise")]
    if tied:
        best = next(r["backend"] for r in rows if r.get("vs fastest") == "fastest")
        line += (f" Within it of the fastest ({best}): {', '.join(tied)}; this run does not rank "
                 "them.")
    return line


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
    vs_fastest_cells(rows)
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
    if any(r.get("_median") for r in rows):
        lines.append(spread_line(rows))
    rows_by_seed = seeds.seed_rows(results)
    if rows_by_seed:  # --seeds: the spread across seeds and whether backends differ, not the first seed alone
        test = seeds.seed_test(results)
        lines += ["", f"across seeds {', '.join(map(str, results['config'].get('seeds', [])))}:",
                  table(rows_by_seed, "simple")] + ([f"do backends differ in FD? {test['verdict']}"] if test else [])
    return "\n".join(lines + time_to_target_stdout(results) + busy_warnings(results))


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


# Mode collapse: few kinds of digit drawn well. Precision (samples inside real digits' k-NN balls)
# and density (how many such balls hold each sample, Naeem et al. 2020; real digits score ~0.95)
# stay high while recall or coverage (real digits near samples) fall: flagged when precision and
# density are at least COLLAPSE_PRECISION and COLLAPSE_DENSITY and recall or coverage is under
# COLLAPSE_FRACTION of the real floor's. Density keeps noise out: the classifier's features put
# iid uniform noise inside a few real 8s' balls (precision 0.82, density 0.53; docs/quality.md#noise).
COLLAPSE_PRECISION, COLLAPSE_DENSITY, COLLAPSE_FRACTION = 0.8, 0.8, 0.5


def collapse_flag(q: dict, floor: dict | None) -> str:
    ref = floor or {"recall": 0.8, "coverage": 0.8}  # no floor: typical real-vs-real values
    low = [k for k in ("recall", "coverage") if q[k] < COLLAPSE_FRACTION * ref[k]]
    if q["precision"] >= COLLAPSE_PRECISION and q["density"] >= COLLAPSE_DENSITY and low:
        return f"mode collapse? high precision and density, low {' and '.join(low)}"
    return ""


def quality_rows(results: dict) -> list[dict]:
    """One row per backend with quality numbers, then the real-vs-real floor."""
    if (results.get("quality_info") or {}).get("kind") == "fid":
        return []  # RGB runs: markdown.fid_lines
    floor = results.get("quality_floor")
    study = seed_spread.match(results)
    rows = []
    for name, r in results["backends"].items():
        if r.get("quality"):
            rows.append(_quality_row(name, r["quality"]))
            if study:  # the noise a one-seed FD difference must beat, measured at this setting
                std, n = study["fd_std"].get(name), study["n"].get(name)
                rows[-1]["FD seed std (study)"] = (f"{std:.0f} (n={n})" if std is not None else
                                                  f"no spread yet (n={n})" if n else "not studied")
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


# ----- time to target quality (--target-fd) -----
def _median_range(values: list[float], digits: int) -> str:
    """median (min-max) of values where inf stands for 'not reached': a seed that missed the
    target is slower than every seed that reached it, so the median stays defined while fewer
    than half missed."""
    def cell(v):
        return "not reached" if np.isinf(v) else f"{v:.{digits}f}"
    if len(values) == 1:
        return cell(values[0])
    return f"{cell(float(np.median(values)))} ({cell(min(values))}-{cell(max(values))})"


def time_to_target_rows(results: dict) -> list[dict]:
    """One row per backend of a run with --target-fd (none otherwise): whether its fixed-z FD
    reached the target, after how many iterations and training seconds; with several seeds,
    how many reached it and the median and range (min-max) over the seeds that finished."""
    from common.results.schema import time_to_target
    runs = seed_runs(results)
    rows, seconds = [], {}
    for name in results["backends"]:
        done = [r[name] for r in runs if name in r and r[name].get("status") == "ok"
                and time_to_target(r[name])]
        if not done:
            continue
        records = [time_to_target(r) for r in done]
        reached = [t for t in records if t["reached"]]
        row = {"backend": name}
        if len(runs) == 1:
            row["reached"] = "yes" if reached else f"no, FD {_last_fd(done[0])} at the end"
        else:
            row["reached"] = f"{len(reached)}/{len(records)} seeds" + (
                "" if len(records) == len(runs) else f" ({len(runs) - len(records)} failed)")
        for label, key, digits in (("iterations", "iterations", 0), ("train s", "seconds", 1)):
            row[label] = _median_range([t[key] if t["reached"] else float("inf") for t in records],
                                       digits)
        rows.append(row)
        seconds[name] = [t["seconds"] if t["reached"] else float("inf") for t in records]
    if len(runs) > 1 and len(rows) > 1:
        _against_fastest(rows, seconds)
    return rows


def _against_fastest(rows: list[dict], seconds: dict[str, list[float]]) -> None:
    """The 'vs fastest' cell of each row: the ratio of median training seconds to the fastest
    backend's, and whether the seeds' ranges (min-max) are apart or overlap. A few seeds allow
    no rank test at 5% (3 against 3: the smallest exact two-sided Mann-Whitney p is 0.1), so
    overlapping ranges are said to separate nothing."""
    medians = {name: float(np.median(v)) for name, v in seconds.items()}
    fastest = min(medians, key=medians.get)
    for row in rows:
        name = row["backend"]
        if name == fastest:
            row["vs fastest"] = "fastest"
        elif np.isinf(medians[name]) or np.isinf(medians[fastest]):
            row["vs fastest"] = "-"
        else:
            apart = min(seconds[name]) > max(seconds[fastest])
            row["vs fastest"] = (f"{medians[name] / medians[fastest]:.2f}x, "
                                 + ("ranges apart" if apart else "ranges overlap: not separated"))


def _last_fd(result: dict) -> str:
    curve = result.get("quality_curve") or []
    return f"{curve[-1]['fd']:.0f}" if curve else "?"


def time_to_target_stdout(results: dict) -> list[str]:
    """run_all.py's lines after its table for a run with --target-fd (none otherwise)."""
    rows = time_to_target_rows(results)
    if not rows:
        return []
    q = results["config"].get("quality") or {}
    seeds = len(seed_runs(results))
    return ["", f"time to FD <= {q.get('target_fd'):g} (checked every {q.get('every')} "
                f"iterations; training seconds, the checks excluded"
                + (f"; median (min-max) over {seeds} seeds" if seeds > 1 else "; one seed") + "):",
            table(rows, "simple")]
