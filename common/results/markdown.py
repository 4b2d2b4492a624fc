"""A run's report: write_report draws every figure and writes report.md from the run folder.

The report's prose is data (PROSE below): one paragraph per section, its {fields} filled from
results.json, so the wording can be read and changed in one place without touching the layout.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from common import atomic
from common.results import figures, replica_scaling, schema, seed_spread, seeds, tables
from common.results.schema import LOSS_COLUMNS
from common.results.tables import table

PROSE = {
    "results": "img/s is the median over timed steps (warm-up excluded; first step shown separately), "
               "IQR its interquartile range: the spread within this run; two runs minutes apart on "
               "a shared machine differ far more (docs/outputs.md#noise). vs fastest: img/s against "
               "the run's fastest, 'within noise' where the IQRs overlap or the medians are within "
               "the measured run-to-run spread (under the table): one run does not rank those. "
               "load: the machine's "
               "1-minute load average before and after the backend trained (its own threads add "
               "to the second). Losses: mean ± std over the last 10% of iterations; the last "
               "step's are shown only as such (a GAN's per-step losses swing widely).",
    "quality": "{samples} samples per backend from the run's fixed z, quantised to uint8 as a PNG "
               "stores them, scored with a numpy LeNet's features (classifier accuracy {accuracy:.1%} "
               "on held-out digits) against {reference}. ± is the evaluator's own error for this one "
               "set of samples (a seeded bootstrap std for FD, precision/recall, density/coverage; "
               "a subset std for KID; a 10-split std for the classifier score), not the spread "
               "between training runs, which is far larger (below). The floor row is what real digits score. KID is the unbiased squared MMD of "
               "the classifier's 64 features with the cubic kernel, in the kernel's own units (no "
               "x1000 scale as some papers print); being unbiased it is slightly negative when two "
               "sets match as well as chance allows, as the floor can be: read a negative KID as 0. "
               "'mode collapse?' marks a backend whose precision and density are high (>= 0.8: its "
               "samples sit among real digits) while recall or coverage is under half the floor's "
               "(few kinds of digit); noise scores low density. High precision alone is not quality.",
    "seeds": "Seeds {seeds}: mean ± std across seeds (each seed's own init, noise and data order), "
             "the FD's 95% Student-t interval of the mean; the sections above show the first seed.",
    "parity": "Every backend against this run's PyTorch from the same initial weights: outputs of G "
              "and D before training (BN with running or batch statistics; float32 rounding, bound "
              "~1e-5) and the first iterations' losses (same data and noise). The loss differences "
              "also hold two real effects: Adam's eps placement (the 'folded' convention of Keras, "
              "MXNet and Chainer moves PyTorch's own losses by ~2e-3 within 5 iterations) and "
              "float32 rounding amplified by Adam's sign-like first steps (float32 PyTorch drifts "
              "1e-3 to 1e-2 from a float64 run within 5, depending on seed and kernels). The test "
              "suite holds each backend to PyTorch in float64 in its own convention, within twice "
              "float32 PyTorch's own measured drift (tests/e2e/test_cli.py).",
    "parallel": "{replicas} replicas ({devices} per host): each trains on 1/{replicas} of every batch "
                "of {batch_size} with its framework's own engine; img/s is the global batch's. "
                "Per-replica BN normalises over each replica's slice, so the losses differ from a "
                "1-device run of the same batch (docs/data-parallel.md). Scaling across replica "
                "counts: `python -m benchmarks.scaling`.",
    "time_to_target": "Each backend trained until the FD of its fixed-z samples was at most "
                      "{target:g} (checked every {every} iterations and at the last, at most "
                      "{iters} iterations), the MLPerf way of putting speed and quality in one "
                      "number. iterations: the first check at or under the target, so it is "
                      "resolved to {every} iterations. train s: the training seconds to that "
                      "check, the sum of the backend's own step times (its first step and any "
                      "compilation included), which leaves out the checks' evaluation and the "
                      "harness's logging. {seeds}",
    "time_to_target_one": "One seed: how long a GAN takes to reach a quality varies between seeds "
                          "(docs/quality.md), so one run is no ranking; --seeds 0,1,2 gives the "
                          "median and range.",
    "time_to_target_seeds": "Median (min-max) over the seeds that finished; a seed that missed "
                            "the target counts as slower than every seed that reached it, so a "
                            "median 'not reached' means half of them or more missed it. vs "
                            "fastest: the median seconds over the fastest backend's, 'ranges "
                            "apart' when every seed of it took longer than every seed of the "
                            "fastest; where the ranges overlap, these seeds separate nothing (3 "
                            "seeds against 3 allow no rank test at 5%: the smallest exact "
                            "Mann-Whitney p is 0.1). Seconds compare only on the same idle machine "
                            "(the warnings above say if it was not).",
    "fid": "Fréchet Inception Distance of {samples} samples per backend from the run's fixed z "
           "(uint8 as a PNG stores them) against {reference}; {network}, {convention}. FID grows "
           "as N shrinks: compare only at the same N (the published 50k-sample numbers are not "
           "comparable). ± is a {bootstrap_rounds}-round seeded bootstrap std.",
}


def write_report(run_dir: Path, results: dict, figures_too: bool = True) -> list[Path]:
    """losses.csv, sample grids, plots and report.md from the run folder; returns what it wrote.
    figures_too False (--no-figures): no sample grids or plots, and report.md says how to draw
    them (matplotlib's import and drawing take about 2 s of a benchmark cell's few, measured)."""
    written = []
    names = list(results["backends"])
    losses = tables.read_losses(run_dir, names)
    with atomic.atomic_path(run_dir / "losses.csv") as tmp:
        losses.to_csv(tmp, index=False, columns=list(LOSS_COLUMNS))
    written.append(run_dir / "losses.csv")

    rows, quality = tables.summary_rows(results), tables.quality_rows(results)
    if figures_too:
        written += _write_figures(run_dir, results, names, losses, rows, quality)
    sections = {"losses": tables.loss_rows(losses), "quality": quality, "seeds": seeds.seed_rows(results),
                "parity": tables.parity_rows(run_dir, results, losses),
                "parallel": replica_scaling.parallel_rows(results)}
    text = report_markdown(results, rows, written, run_dir, sections)
    if not figures_too:
        text += ("\nFigures not drawn (--no-figures): `python run_all.py --report "
                 f"{run_dir}` draws them.\n")
    atomic.write_text(run_dir / "report.md", text)
    written.append(run_dir / "report.md")
    return written


def _write_figures(run_dir: Path, results: dict, names: list[str], losses, rows: list[dict],
                   quality: list[dict]) -> list[Path]:
    """The sample grids and plots of write_report; returns their paths."""
    written = []
    context = figures.run_context(results)
    grids, at = {}, {}
    for name in names:
        f = run_dir / "backends" / schema.label_folder(name) / "samples.npy"
        if f.exists():
            grids[name] = np.load(f, allow_pickle=False)
            at[name] = results["backends"][name].get("iterations_done", "?")
            figures.save_grid(grids[name], run_dir / f"samples_{schema.label_folder(name)}.png",
                              f"{name}: samples from the fixed z, iteration {at[name]}", context)
            written.append(run_dir / f"samples_{schema.label_folder(name)}.png")
    if len(grids) > 1:
        figures.save_grids_side_by_side(grids, run_dir / "samples.png", at, context)
        written.append(run_dir / "samples.png")
    if len(losses):
        figures.loss_curves(losses, run_dir / "loss_curves.png", context)
        written.append(run_dir / "loss_curves.png")
    if any(r["img/s"] for r in rows):
        figures.throughput_chart(rows, run_dir / "throughput.png", context)
        written.append(run_dir / "throughput.png")
    if quality:
        study = seed_spread.match(results)
        measured = {k: v for k, v in (study or {}).get("fd_std", {}).items() if v is not None}
        figures.quality_chart(quality, run_dir / "quality.png", context, seeds.seed_rows(results),
                              measured or None)
        written.append(run_dir / "quality.png")
    if figures.time_to_quality_chart(results, run_dir / "time_to_quality.png", context):
        written.append(run_dir / "time_to_quality.png")
    return written


def machine_line(prov: dict) -> str:
    """The '- Machine: ...' line of a published table, from a run's provenance (common/sysinfo.py)."""
    return (f"- Machine: {prov.get('cpu')}, {prov.get('cpu_count')} logical CPUs, "
            + (", ".join(prov["gpus"]) if prov.get("gpus") else "no GPU"))


def environment_lines(results: dict) -> list[str]:
    """One line per other environment the run used (NAME@ENV): its labels, Python and packages."""
    envs: dict[str, tuple[list[str], dict]] = {}
    for label, row in results["backends"].items():
        env = row.get("environment") or {}
        if label.partition("@")[2] and env.get("packages") is not None:
            envs.setdefault(label.partition("@")[2], ([], env))[0].append(label)
    return [f"- environment {name} ({', '.join(labels)}): Python {env.get('python')}, "
            + ", ".join(f"{k} {v}" for k, v in env["packages"].items()) for name, (labels, env) in envs.items()]


def _section(title: str, rows: list[dict], prose: str | None = None) -> list[str]:
    return [f"## {title}", "", *([prose, ""] if prose is not None else []), table(rows, "github"), ""]


def report_markdown(results: dict, rows: list[dict], figure_paths: list[Path], run_dir: Path,
                    sections: dict | None = None) -> str:
    """report.md: the run's command, machine and software, then one section per non-empty table
    of `sections` (losses, quality, seeds, parity, parallel), FID, problems and figures."""
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
        *environment_lines(results),
        f"- git: {(prov.get('git') or {}).get('commit')}"
        + (" (dirty)" if (prov.get("git") or {}).get("dirty") else ""),
        "",
        *_section("Results", rows, PROSE["results"]),
    ]
    if any(r.get("_median") for r in rows):
        lines += [tables.spread_line(rows), ""]
    busy = tables.busy_warnings(results)
    if busy:
        lines += [f"> **{line}**" for line in busy] + [""]
    if sections.get("losses"):
        lines += _section("Losses", sections["losses"])
    if sections.get("quality"):
        info = results.get("quality_info") or {}
        lines += _section("Sample quality", sections["quality"], PROSE["quality"].format(
            samples=info.get("samples", "?"), accuracy=info.get("classifier_accuracy", float("nan")),
            reference=info.get("reference", "held-out real digits")))
        lines += [seed_spread.report_words(results), ""]
    if sections.get("seeds"):
        listed = ", ".join(map(str, results["config"].get("seeds")))
        lines += _section("Across training seeds", sections["seeds"], PROSE["seeds"].format(seeds=listed))
        lines += seed_test_lines(seeds.seed_test(results))
    lines += time_to_target_lines(results)
    if sections.get("parity"):
        lines += _section("Parity in this run", sections["parity"], PROSE["parity"])
    if sections.get("parallel"):
        lines += _section("Data parallel", sections["parallel"], PROSE["parallel"].format(
            replicas=cfg["devices"] * cfg.get("nodes", 1), devices=cfg["devices"],
            batch_size=cfg["batch_size"]))
    lines += fid_lines(results)
    problems = [r for r in rows if r["status"] != "ok"]
    if problems:
        lines += ["## Skipped or failed", ""] + [f"- **{r['backend']}** ({r['status']}): {r['_reason']}"
                                                 for r in problems] + [""]
    figs = [f for f in figure_paths if f.suffix == ".png"]
    if figs:
        lines += ["## Figures", ""] + [f"![{f.stem}]({f.relative_to(run_dir)})" for f in figs] + [""]
    return "\n".join(lines)


def seed_test_lines(test: dict | None) -> list[str]:
    """The between-backend test of a --seeds run, in words: its p-value and verdict."""
    if not test:
        return []
    pairs = [f"{p['a']} vs {p['b']} p = {p['p_holm']:.3g}" for p in test["pairs"]]
    return [f"**Does any backend reach a different FD?** {test['verdict'][0].upper()}{test['verdict'][1:]}.",
            "", f"Test: {test['test']}, family-wise α = {test['alpha']}"
            + (f"; Holm-adjusted pairwise p: {'; '.join(pairs)}" if pairs else "") + ".", ""]


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
    rows = tables.fid_rows(results)
    return ["## Sample quality (FID)", "", PROSE["fid"].format(**info), "",
            table(rows, "github") if rows else "", *errors, ""]


def time_to_target_lines(results: dict) -> list[str]:
    """A run with --target-fd: the "Time to target" section (none otherwise)."""
    rows = tables.time_to_target_rows(results)
    if not rows:
        return []
    cfg = results["config"]
    q = cfg.get("quality") or {}
    several = len(schema.seed_runs(results)) > 1
    prose = PROSE["time_to_target"].format(
        target=q["target_fd"], every=q["every"], iters=cfg["iters"],
        seeds=PROSE["time_to_target_seeds" if several else "time_to_target_one"])
    return _section("Time to target", rows, prose)
