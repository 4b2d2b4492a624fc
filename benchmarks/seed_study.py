"""The seed study: how far each backend's sample quality moves between training seeds, and
whether any framework reaches a different quality at the main job's setting.

Each setting trains every seed it lacks with the main job's command (`run_all.py --dataset mnist
--iters N --seed S`, plus checkpoints every CHECKPOINT_EVERY iterations), one run folder per seed
under --runs; a seed whose folder holds a finished run is kept, an unfinished one is continued
with `run_all.py --resume` (finished backends kept, the others from their last checkpoint), and
one that cannot be resumed is moved aside and trained again, so the study goes on after an
interruption, on another day or machine too (each record names its machine). Each finished
seed's results.json and losses.csv are copied to benchmarks/results/seed-study/<setting>/seed-S/
(committed), and the analysis is rewritten from those: study.json (one record per backend and
seed, per backend mean, std and 95% interval, the between-backend test) and study.md.

--adopt DIR takes run folders made before (a single seed, or a `--seeds` folder: every seed in
it) whose setting matches one here; --analyse only rewrites the analysis from the committed
inputs."""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import backends
from common import atomic, cli
from common.harness.orchestrate import EXIT_INTERRUPTED as INTERRUPTED
from common.results import seed_spread, seedstats, tables
from common.results.schema import LOSS_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
INPUTS = ROOT / "benchmarks" / "results" / "seed-study"
MEASURES = (("fd", "FD", 1), ("kid", "KID", 1), ("classifier_score", "classifier score", 2),
            ("precision", "precision", 3), ("recall", "recall", 3))
# The settings: the main job's (every backend, 8 seeds) and one long enough that the samples
# read as digits (the three fastest backends, 3 seeds). Batch 64 and preset mnist32 are the
# main job's defaults; the dataset is MNIST, recorded as mnist-5k when offline.
SETTINGS = {
    "mnist32-500": {"backends": list(backends.NAMES), "iters": 500, "seeds": 8},
    "mnist32-2000": {"backends": ["pytorch", "tensorflow", "jax"], "iters": 2000, "seeds": 3},
}
# Runs scored before the evaluator dropped the widest k-NN balls record no rule: their precision
# and recall are not comparable with later ones (docs/quality.md#noise).
OLD_PRECISION_RULE = "k=3, every k-NN ball (before the outlier fix)"
# A seed interrupted mid-backend loses at most this many iterations; a resume reproduces the
# uninterrupted run's losses bit for bit on a CPU (docs/checkpoints.md), so the quality is the same.
CHECKPOINT_EVERY = 100
BASE = {"preset": "mnist32", "batch_size": 64, "shared_init": True, "bf16": False, "devices": 1,
        "nodes": 1, "sync_bn": False}


def parse(argv=None):
    p = cli.entry_parser("python -m benchmarks.seed_study", __doc__)
    p.add_argument("--setting", action="append", choices=list(SETTINGS),
                   help="a setting to train (repeatable; default: every one, in order)")
    p.add_argument("--seeds", type=int, default=None, metavar="N",
                   help="seeds 0..N-1 per setting (default: each setting's own, 8 and 3)")
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "seed-study", metavar="DIR",
                   help="where the run folders go (default runs/seed-study/, not committed)")
    p.add_argument("--adopt", type=Path, nargs="+", default=[], metavar="DIR",
                   help="run folders made before to take in (single seed or --seeds), then go on")
    p.add_argument("--analyse", action="store_true",
                   help="train nothing: rewrite study.json and study.md from the committed inputs")
    p.add_argument("--inputs", type=Path, default=INPUTS, metavar="DIR",
                   help="the committed inputs and analysis (default benchmarks/results/seed-study/)")
    args = p.parse_args(argv)
    if args.seeds is not None and args.seeds < 1:
        p.error(f"--seeds must be positive, got {args.seeds}")
    for d in args.adopt:
        if not (d / "results.json").is_file():
            p.error(f"--adopt {d}: no results.json there; name a run folder of run_all.py")
    return args


# ----- one seed's run -----
def finished(results: dict) -> bool:
    """A run that ended, with every backend ok and scored."""
    runs = results.get("backends") or {}
    return bool(results.get("finished")) and bool(runs) and all(
        r.get("status") == "ok" and r.get("quality") for r in runs.values())


def read_results(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "results.json").read_text())
    except (OSError, ValueError):
        return None


def setting_of(results: dict) -> str | None:
    """The study setting a run's config is, None if none."""
    dataset = (results.get("dataset") or {}).get("name", "")
    key = seed_spread.setting_key(results["config"], dataset)
    for name, s in SETTINGS.items():
        if (key["dataset"] in ("mnist", "mnist-5k") and key["iters"] == s["iters"]
                and all(key[k] == v for k, v in BASE.items())):
            return name
    return None


def single_seed(results: dict, seed: str | None) -> dict:
    """One seed's results out of a run (the run itself for its first seed, else by_seed[seed])."""
    one = {k: v for k, v in results.items() if k != "by_seed"}
    if seed is not None and seed != str(results["config"]["seed"]):
        one["backends"] = results["by_seed"][seed]
        one["config"] = dict(results["config"], seed=int(seed))
    one["config"] = {k: v for k, v in one["config"].items() if k != "seeds"}
    return one


def keep_inputs(results: dict, seed_dir: Path, inputs: Path, setting: str, source: str) -> bool:
    """Copies one finished seed into the committed inputs; False if it is not finished or that
    seed is already there."""
    if not finished(results):
        return False
    target = inputs / setting / f"seed-{results['config']['seed']}"
    if (target / "results.json").exists():
        return False
    dataset = (results.get("dataset") or {}).get("name")
    others = {r["dataset"] for r in records(inputs) if r["setting"] == setting} - {dataset}
    if others:  # one setting, one dataset as recorded: mnist-5k (offline) is not MNIST's 60,000
        print(f"seed study: {source}: its dataset {dataset} is not the setting's "
              f"{', '.join(sorted(others))}; left out", file=sys.stderr)
        return False
    target.mkdir(parents=True, exist_ok=True)
    losses = tables.read_losses(seed_dir, list(results["backends"]))
    with atomic.atomic_path(target / "losses.csv") as tmp:
        losses.to_csv(tmp, index=False, columns=list(LOSS_COLUMNS))
    atomic.write_json(target / "results.json", dict(results, study_source=source))
    return True


def adopt(folder: Path, inputs: Path) -> list[str]:
    """Takes every finished seed of a run folder whose setting is a study setting."""
    results = read_results(folder)
    if not results or not setting_of(results):
        return []
    setting, taken = setting_of(results), []
    seeds = [str(results["config"]["seed"]), *(results.get("by_seed") or {})]
    for seed in seeds:
        one = single_seed(results, seed)
        seed_dir = folder if seed == seeds[0] else folder / "seeds" / seed
        if keep_inputs(one, seed_dir, inputs, setting, f"adopted from {folder}"):
            taken.append(f"{setting} seed {seed}")
    return taken


def train_seed(setting: str, seed: int, runs: Path, inputs: Path) -> bool:
    """Trains one seed of a setting unless its run folder holds a finished run; True if done."""
    s = SETTINGS[setting]
    folder = runs / setting / f"seed-{seed}"
    if (inputs / setting / f"seed-{seed}" / "results.json").exists():
        return True
    results = read_results(folder)
    if results and finished(results):
        return keep_inputs(results, folder, inputs, setting, "trained by the study") or True
    if results:  # an interrupted attempt: continued where its checkpoints allow
        print(f"seed study: {setting} seed {seed}: resuming {folder}", file=sys.stderr, flush=True)
        rc = subprocess.call(cli.run_all_command(resume=str(folder), quiet=True), cwd=ROOT)
        results = read_results(folder)
        if rc == 0 and results and finished(results):
            keep_inputs(results, folder, inputs, setting, "trained by the study")
            return True
        if rc == INTERRUPTED:
            raise KeyboardInterrupt
    if folder.exists():  # an attempt that cannot go on: kept aside, never counted
        aside = folder.with_name(f"{folder.name}.unfinished-{dt.datetime.now():%Y%m%dT%H%M%S}")
        folder.rename(aside)
        print(f"seed study: {folder} was unfinished; moved to {aside.name}", file=sys.stderr)
    folder.parent.mkdir(parents=True, exist_ok=True)
    cmd = cli.run_all_command(backend=s["backends"], dataset="mnist", iters=s["iters"], seed=seed,
                              out=str(folder), quiet=True, checkpoint_every=CHECKPOINT_EVERY)
    print(f"seed study: {setting} seed {seed}: {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
    rc = subprocess.call(cmd, cwd=ROOT)
    if rc == INTERRUPTED:
        raise KeyboardInterrupt
    results = read_results(folder)
    # the finished run's numbers are kept even when its report failed (exit 1 after training)
    if not results or not finished(results):
        print(f"seed study: {setting} seed {seed} did not finish (exit {rc}); run the study "
              "again to retry it", file=sys.stderr)
        return False
    keep_inputs(results, folder, inputs, setting, "trained by the study")
    return True


# ----- the analysis -----
def records(inputs: Path) -> list[dict]:
    """One record per backend and seed from the committed inputs."""
    out = []
    for setting in SETTINGS:
        for f in sorted((inputs / setting).glob("seed-*/results.json"), key=lambda p: int(p.parent.name[5:])):
            results = json.loads(f.read_text())
            prov = results.get("provenance") or {}
            for name, r in results["backends"].items():
                q = r.get("quality") or {}
                if r.get("status") != "ok" or not q:
                    continue
                out.append({"setting": setting, "backend": name, "seed": results["config"]["seed"],
                            **{k: q.get(k) for k, _, _ in MEASURES},
                            "precision_rule": (results.get("quality_info") or {}).get(
                                "precision_recall", OLD_PRECISION_RULE),
                            "iterations": r.get("iterations_done"),
                            "dataset": (results.get("dataset") or {}).get("name"),
                            "machine": prov.get("cpu"),
                            "versions": seed_spread.backend_versions(prov.get("packages") or {}, name),
                            "commit": (prov.get("git") or {}).get("commit"),
                            "folder": str(f.parent.relative_to(inputs))})
    return out


def analyse(recs: list[dict], inputs: Path) -> dict:
    """study.json's object: per setting its key, machines, versions, per-backend summary and the
    between-backend tests (FD, KID), and every record."""
    settings = {}
    for name, s in SETTINGS.items():
        rows = [r for r in recs if r["setting"] == name]
        if not rows:
            continue
        by = {b: [r for r in rows if r["backend"] == b] for b in s["backends"] if any(r["backend"] == b for r in rows)}
        versions = {}
        for b, rs in by.items():
            for r in rs:
                for p, v in r["versions"].items():
                    versions.setdefault(b, {}).setdefault(p, [])
                    if v not in versions[b][p]:
                        versions[b][p].append(v)
        dataset = sorted({r["dataset"] for r in rows})
        rules = {r["precision_rule"] for r in rows}  # one setting never averages two rules
        settings[name] = {
            "key": dict(seed_spread.setting_key({**BASE, "iters": s["iters"]}, dataset[0])),
            "command": " ".join(cli.run_all_command(backend=s["backends"], dataset="mnist",
                                                    iters=s["iters"], seed=0)[1:]).replace("--seed 0", "--seed S"),
            "seeds_wanted": s["seeds"], "machines": sorted({r["machine"] for r in rows if r["machine"]}),
            "datasets": dataset, "versions": versions,
            "summary": {b: {k: seedstats.summarize([r[k] for r in rs]) for k, _, _ in MEASURES
                            if k not in ("precision", "recall") or len(rules) == 1}
                        for b, rs in by.items()},
            "precision_rules": sorted(rules),
            "seeds": {b: [r["seed"] for r in rs] for b, rs in by.items()},
            "test": seedstats.between_backends({b: [r["fd"] for r in rs] for b, rs in by.items()}, "FD"),
            "test_kid": seedstats.between_backends({b: [r["kid"] for r in rs] for b, rs in by.items()}, "KID"),
        }
    return {"study": "seed study", "command": "python -m benchmarks.seed_study",
            "generated": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "settings": settings, "records": recs}


def markdown(study: dict) -> str:
    """study.md: per setting a table of every backend's mean ± std, 95% interval and seeds, and
    the test's verdict in words."""
    lines = ["# Seed study: sample quality across training seeds", "",
             "Written by `python -m benchmarks.seed_study` from the run folders beside this file "
             "(one per setting and seed; study.json holds every record). ± is the std across seeds; "
             "the interval is the 95% Student-t interval of the mean (an FD interval's lower end "
             "is shown clipped at 0, where FD's range ends; study.json keeps the t interval). "
             "One seed, or one machine, is "
             "never a ranking: a backend's FD moves this much with the seed alone.", ""]
    for name, s in study["settings"].items():
        key = s["key"]
        lines += [f"## {name}: {key['preset']}, {key['iters']} iterations, batch {key['batch_size']}, "
                  f"{key['dataset']}", "",
                  f"`python {s['command']}` for S in the seeds below; machines: {', '.join(s['machines'])}.",
                  ""]
        rows = []
        for b, summ in s["summary"].items():
            row = {"backend": b, "seeds": f"{summ['fd']['n']} ({_seed_list(s['seeds'][b])})"}
            for k, label, digits in MEASURES:
                if k not in summ:
                    continue
                m = summ[k]
                row[label] = (f"{m['mean']:.{digits}f} ± {m['std']:.{digits}f}" if m["std"] is not None
                              else f"{m['mean']:.{digits}f}")
                if k == "fd":
                    row["FD 95% interval"] = (f"{max(0.0, m['ci95'][0]):.{digits}f} to {m['ci95'][1]:.{digits}f}"
                                              if m["ci95"] else "-")
            row["versions"] = ", ".join(f"{p} {'/'.join(v)}" for p, v in s["versions"].get(b, {}).items()
                                        if p != "numpy")
            rows.append(row)
        rules = s.get("precision_rules", [])
        lines += [tables.table(rows, "github"), "",
                  (f"Precision and recall: {rules[0]}." if len(rules) == 1 else
                   "Precision and recall left out: the seeds were scored under different rules ("
                   + "; ".join(rules) + ")."), "",
                  f"**Does any framework reach a different quality here?** FD: {s['test']['verdict']}. "
                  f"KID: {s['test_kid']['verdict']}.", "",
                  f"Test: {s['test']['test']}, family-wise α = {s['test']['alpha']}. "
                  + (f"Seeds wanted: {s['seeds_wanted']} per backend." if any(
                      n < s["seeds_wanted"] for n in s["test"]["n_per_backend"].values()) else ""), ""]
    return "\n".join(lines) + "\n"


def _seed_list(seeds: list[int]) -> str:
    seeds = sorted(seeds)
    if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))


# The pages that quote the study, each between these markers: rewritten with the analysis, so
# no page quotes a single run's ranking or a stale study (tests/unit/test_seed_study.py checks).
QUOTED_IN = ("README.md", "docs/quality.md", "benchmarks/tables/cpu-2core-mnist-default.md")
START, END = "<!-- seed-study: generated by python -m benchmarks.seed_study -->", "<!-- seed-study end -->"


def quote(study: dict) -> str:
    """What the pages quote: per setting each backend's FD mean ± std (seeds), and the verdict."""
    lines = []
    for name, s in study["settings"].items():
        key = s["key"]
        fds = ", ".join(f"{b} {m['fd']['mean']:.0f} ± {m['fd']['std']:.0f}" if m["fd"]["std"] is not None
                        else f"{b} {m['fd']['mean']:.0f}" for b, m in s["summary"].items())
        n = sorted({m["fd"]["n"] for m in s["summary"].values()})
        seeds = "1 seed" if n == [1] else f"{n[0] if len(n) == 1 else f'{n[0]}-{n[-1]}'} seeds"
        what = "FD mean ± std across seeds" if n[-1] > 1 else "FD of the one seed so far (no spread yet)"
        lines.append(f"- **{key['iters']} iterations** ({key['preset']}, batch {key['batch_size']}, "
                     f"{key['dataset']}; {seeds} per backend "
                     f"on {', '.join(s['machines'])}): {what}: {fds}. "
                     f"Does any framework reach a different quality? {s['test']['verdict'][0].upper()}"
                     f"{s['test']['verdict'][1:]}.")
    return "\n".join([START, *lines, END])


def rewrite_quotes(study: dict, root: Path = ROOT) -> list[Path]:
    """Rewrites the block between the markers in each page that has them; returns those changed."""
    changed = []
    for rel in QUOTED_IN:
        page = root / rel
        text = page.read_text() if page.exists() else ""
        if START not in text or END not in text:
            continue
        head, rest = text.split(START, 1)
        new = head + quote(study) + rest.split(END, 1)[1]
        if new != text:
            atomic.write_text(page, new)
            changed.append(page)
    return changed


def write_analysis(inputs: Path) -> dict:
    study = analyse(records(inputs), inputs)
    atomic.write_json(inputs / "study.json", study)
    atomic.write_text(inputs / "study.md", markdown(study))
    if inputs.resolve() == INPUTS.resolve():  # the committed study: the pages quote it
        rewrite_quotes(study)
    return study


def main(argv=None) -> int:
    args = parse(argv)
    args.inputs.mkdir(parents=True, exist_ok=True)
    for folder in args.adopt:
        taken = adopt(folder, args.inputs)
        print(f"seed study: adopted from {folder}: {', '.join(taken) or 'nothing (not a study setting, unfinished, or already there)'}",
              file=sys.stderr)
    ok = True
    if not args.analyse:
        for setting in args.setting or list(SETTINGS):
            for seed in range(args.seeds or SETTINGS[setting]["seeds"]):
                ok = train_seed(setting, seed, args.runs, args.inputs) and ok
                write_analysis(args.inputs)
    study = write_analysis(args.inputs)
    for name, s in study["settings"].items():
        print(f"{name}: {s['test']['verdict']}", file=sys.stderr)
    print(f"seed study: wrote {args.inputs / 'study.json'} and study.md", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("seed study: interrupted; run the same command again to go on", file=sys.stderr)
        sys.exit(130)
