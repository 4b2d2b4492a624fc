"""The GPU check's last step: does a framework's best configuration cost sample quality on the
device? Each backend with fast paths there trains its best configuration exactly as the main job
trained spec (the main job's own command, for that backend, plus the fast-path flags: the same
data, iterations, seeds, batches and z), and the evaluator scores both (docs/quality.md).

One seed cannot separate two configurations (benchmarks/results/seed-study/), so the full check
trains each configuration with `seeds` training seeds (the main job's run is spec's first; spec's
other seeds run again with --seeds) and judges best against spec with the seed study's rule
(common/results/seedstats.py); the smoke run keeps one seed and says that it gives no verdict.
Run by the GPU check (steps.py), which passes its Check and the main job's command."""
from __future__ import annotations

import json
from pathlib import Path

from benchmarks import configs
from benchmarks.gpu_check.state import outcome
from common.results import seeds, seedstats, tables

# A backend's best run is a main-job process: imports, the first step's compile, the main job's
# iterations and its quality probes. Not started with less left (an estimate; on the 2-core VM a
# smoke run's took 8-12 s).
MIN_SECONDS = 30


def quality_of(results: Path, backend: str) -> dict | None:
    """A run's final sample-quality record for one backend (results.json), None without one."""
    try:
        return json.loads(results.read_text())["backends"][backend].get("quality")
    except (OSError, ValueError, KeyError, TypeError):
        return None


def fds_of(results: Path, backend: str) -> list[float]:
    """One backend's FD per training seed of a run (its --seeds too), [] without any."""
    try:
        return seeds.seed_fds(json.loads(results.read_text())).get(backend, [])
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _scores(q: dict | None, which: str, fds: list[float]) -> dict:
    if not q:
        return {f"FD {which}": None, f"classifier score {which}": None}
    across = seedstats.summarize(fds)
    fd = (tables.spread(q, "fd", 1) if len(fds) < 2  # one seed: the evaluator's own ± only
          else f"{across['mean']:.1f} ± {across['std']:.1f} ({len(fds)} seeds)")
    return {f"FD {which}": fd, f"classifier score {which}": tables.spread(q, "classifier_score", 2)}


def verdict(spec: list[float], best: list[float]) -> str:
    """Best against spec in words, by the seed study's rule; one seed gives none."""
    if min(len(spec), len(best)) < seedstats.MIN_SEEDS:
        return (f"no verdict: {min(len(spec), len(best))} seed(s) cannot separate two configurations "
                f"(the full check trains {seedstats.MIN_SEEDS} or more)")
    return seedstats.between_backends({"spec": spec, "best": best}, "FD")["verdict"]


def quality_step(check, ready: list[str], main_command) -> None:
    """One row per backend with fast paths on the device: FD and classifier score of spec (the
    main job's) and of best, trained alike. A resumed check keeps the rows measured earlier.
    main_command(check, backends, out): the main job's command line."""
    device, records = check.args.device, check.doc["steps"]
    spec_results = check.out / records.get("main", {}).get("out", "main") / "results.json"
    kept = {r["backend"]: r for r in records.get("quality", {}).get("rows", []) if r.get("status") == "ok"}
    rows, seconds = [], 0.0
    best = {n: configs.fast_paths("best", n, device) for n in ready}
    having = [n for n in ready if best[n] and not isinstance(best[n], str)]  # else the grid's row says why
    n_seeds = check.args.size["quality_seeds"]
    for name in having[:check.args.size["quality_backends"]]:
        paths = best[name]
        if name in kept:
            rows.append(kept[name])
            continue
        row = {"backend": name, "as run": configs.label(paths)}
        # best's seeds, and spec's beyond the main job's first: one main-job process each
        needed = MIN_SECONDS * (2 * n_seeds - 1)
        if check.left() < needed:
            rows.append(dict(row, status="not run: budget", reason=f"needs {needed} s left"))
            continue
        runs, took = {}, 0.0
        for config, flags, seed_list in (("best", configs.flags(paths), list(range(n_seeds))),
                                         ("spec", [], list(range(1, n_seeds)))):
            if not seed_list:
                continue
            out = check.out / f"quality-{name}{'' if config == 'best' else '-spec'}{check.suffix}"
            cmd = [*main_command(check, [name], out), *flags,
                   *(["--seeds", ",".join(map(str, seed_list))] if len(seed_list) > 1 else
                     ["--seed", str(seed_list[0])])]
            rc, t = check.run(cmd, f"{out.name}.log")
            took += t
            runs[config] = (rc, out)
        seconds += took
        rc, out = runs["best"]
        scored = quality_of(out / "results.json", name)
        spec_fds = fds_of(spec_results, name)[:1] + (fds_of(runs["spec"][1] / "results.json", name)
                                                    if "spec" in runs else [])
        best_fds = fds_of(out / "results.json", name)
        status = outcome(max(r for r, _ in runs.values()), bool(scored))
        rows.append(dict(row, status=status, seconds=took,
                         **_scores(quality_of(spec_results, name), "spec", spec_fds),
                         **_scores(scored, "best", best_fds), verdict=verdict(spec_fds, best_fds),
                         **({} if status == "ok" else {"reason": f"see logs/{out.name}.log"})))
    cut = [r for r in rows if "budget" in r["status"]]
    status = ("failed" if any(r["status"] == "failed" for r in rows)
              else f"partial: budget ({len(cut)} not run)" if cut else "ok")
    check.step("quality", {"status": status, "seconds": round(seconds, 1), "rows": rows,
                           "spec": spec_results.parent.name})


if __name__ == "__main__":
    import benchmarks
    raise SystemExit(benchmarks.internal_entry("benchmarks.gpu_check.quality_step", "the GPU check's quality step", "benchmarks.gpu_check -h"))
