"""The committed seed study as the noise a run's quality differences must beat.

`python -m benchmarks.seed_study` writes benchmarks/results/seed-study/study.json: one record per
backend and seed at fixed settings, and per setting each backend's FD mean and std across
seeds. A run's report and `--compare` look up the setting that matches the run here (preset,
dataset as recorded, iterations, batch and the numerics options) and name the framework
versions the study used where the run's differ.
"""
from __future__ import annotations

import json
from pathlib import Path

from common.results import schema

STUDY = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "seed-study" / "study.json"
STUDY_LINK = "benchmarks/results/seed-study/study.md"

# The packages whose versions decide a backend's numbers (numpy for all of them).
FRAMEWORK_PACKAGES = {
    "pytorch": ("torch",),
    "tensorflow": ("tensorflow", "tensorflow-cpu", "keras"),
    "mxnet": ("mxnet",),
    "chainer": ("chainer", "cupy"),
    "jax": ("jax", "jaxlib", "flax", "optax"),
}
# What a run's config must equal for a study setting to stand for its seed spread: the options
# that change what is computed (precision, replicas), beside preset, dataset, iterations, batch.
MATCH_KEYS = ("preset", "iters", "batch_size", "shared_init", "bf16", "devices", "nodes", "sync_bn")
MATCH_DEFAULTS = {"shared_init": True, "bf16": False, "devices": 1, "nodes": 1, "sync_bn": False}


def backend_versions(packages: dict, backend: str) -> dict:
    """The versions that decide one backend's numbers, from a provenance "packages" object."""
    keys = ("numpy", *FRAMEWORK_PACKAGES.get(backend, ()))
    return {k: packages[k] for k in keys if packages.get(k)}


def setting_key(config: dict, dataset: str) -> dict:
    """What identifies a study setting, from a run's config and its dataset as recorded."""
    key = {k: config.get(k, MATCH_DEFAULTS.get(k)) for k in MATCH_KEYS}
    key["dataset"] = dataset
    return key


def load(path: Path = STUDY) -> dict | None:
    """The committed study, None when there is none or it cannot be read."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def match(results: dict, study: dict | None = None) -> dict | None:
    """The study setting that stands for this run's seed spread, None when none matches:
    {"name", "n": {backend: seeds}, "fd_std": {backend: std}, "fd_mean", "versions_differ":
    {backend: {package: (study's versions, this run's)}}, "machines", "verdict"}."""
    config = results.get("config")
    if not config:  # a bare or partial results object: no setting to match
        return None
    study = study if study is not None else load()
    if not study:
        return None
    dataset = (results.get("dataset") or {}).get("name") or config.get("dataset")
    key = setting_key(config, dataset)
    # this run's rows by label ('jax', 'jax@newest'), each with its backend and its own versions
    labels = {label: (row.get("backend") or label.partition("@")[0])
              for label, row in (results.get("backends") or {}).items()}
    for name, setting in (study.get("settings") or {}).items():
        if setting.get("key") != key:
            continue
        summary = setting.get("summary") or {}
        differ = {}
        for label, backend in labels.items():
            versions = (setting.get("versions") or {}).get(backend)
            if not versions:
                continue
            ours = backend_versions(schema.row_packages(results, label), backend)
            changed = {p: (", ".join(v), ours.get(p, "absent")) for p, v in versions.items()
                       if ours.get(p) not in v}
            if changed:
                differ[label] = changed
        variances = [s["fd"]["std"] ** 2 for s in summary.values() if s["fd"]["std"] is not None]
        studied = {label: summary[b] for label, b in labels.items() if b in summary}
        return {"name": name,
                # keyed by this run's labels: a label's numbers are its backend's in the study
                "n": {label: s["fd"]["n"] for label, s in studied.items()},
                # every backend's seeds measure the same kind of noise: their pooled std is the
                # better-estimated one (a 4-seed std alone is uncertain by about ±40%)
                "fd_std_pooled": float(sum(variances) / len(variances)) ** 0.5 if variances else None,
                "fd_std_df": sum(s["fd"]["n"] - 1 for s in summary.values() if s["fd"]["std"] is not None),
                "fd_std": {label: s["fd"]["std"] for label, s in studied.items()},
                "fd_mean": {label: s["fd"]["mean"] for label, s in studied.items()},
                "versions_differ": differ, "machines": setting.get("machines", []),
                "verdict": (setting.get("test") or {}).get("verdict", "")}
    return None


def spread_words(m: dict) -> str:
    """One sentence: the study's FD seed std range and where it came from."""
    stds = [s for s in m["fd_std"].values() if s is not None]
    n = sorted(set(m["n"].values()))
    seeds = str(n[0]) if len(n) == 1 else f"{n[0]}-{n[-1]}"
    words = (f"the seed study at this setting ({STUDY_LINK}: {seeds} "
             f"seeds per backend on {', '.join(m['machines']) or 'an unnamed machine'}) measured an FD "
             f"std across seeds of {min(stds):.0f}-{max(stds):.0f} (pooled {m['fd_std_pooled']:.0f})")
    if m["versions_differ"]:
        words += "; it used " + "; ".join(
            f"{b}: " + ", ".join(f"{p} {old} (this run: {new})" for p, (old, new) in changed.items())
            for b, changed in m["versions_differ"].items())
    return words


def threshold(m: dict) -> float:
    """The FD distance two single runs must exceed to differ beyond the matched study's noise."""
    from common.results import seedstats
    return seedstats.noise_threshold(m["fd_std_pooled"], m.get("fd_std_df"))


def report_words(results: dict) -> str:
    """The report's sentence on how far this run's quality differences can be trusted."""
    seeds = len(results["config"].get("seeds") or [results["config"].get("seed")])
    m = match(results)
    if seeds > 1:
        head = (f"This run trained {seeds} seeds: the section 'Across training seeds' gives each "
                "backend's mean and spread and the test of whether backends differ; the table "
                "here is the first seed's.")
    else:
        head = ("**One seed cannot separate backends.** Another seed, or the same seed on "
                "another CPU's kernels, ends on another FD.")
    if m and m["fd_std_pooled"] is None:  # a setting whose study has one seed per backend so far
        tail = (f" The seed study at this setting ({STUDY_LINK}) has one seed per backend so far: "
                "no seed spread is measured yet, so read one run's FD differences as unmeasured "
                "noise, or train with `--seeds 0,1,2,3,4` (or more) to measure it.")
    elif m:
        tail = (f" For a single run, {spread_words(m)}: two single runs' FDs differ beyond "
                f"that noise only when further apart than t·√2 × the pooled std, "
                f"{threshold(m):.0f} here (`run_all.py --compare` applies it). "
                f"The study's verdict: {m['verdict']}.")
    else:
        tail = (" No committed seed study matches this setting (preset, dataset as recorded, "
                f"iterations, batch; {STUDY_LINK}): run it with `--seeds 0,1,2,3,4` (or more) to "
                "measure the spread, and read one run's FD differences as unmeasured noise.")
    return head + tail
