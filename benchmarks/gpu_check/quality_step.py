"""The GPU check's last step: does a framework's best configuration cost sample quality on the
device? Each backend with fast paths there trains its best configuration exactly as the main job
trained spec (the main job's own command, for that backend, plus the fast-path flags: the same
data, iterations, seed, batches and z), and the evaluator scores both (docs/quality.md).
Run by the GPU check (steps.py), which passes its Check and the main job's command."""
from __future__ import annotations

import json
from pathlib import Path

from benchmarks import configs
from benchmarks.gpu_check.state import outcome
from common.results import tables

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


def _scores(q: dict | None, which: str) -> dict:
    if not q:
        return {f"FD {which}": None, f"classifier score {which}": None}
    return {f"FD {which}": tables.spread(q, "fd", 1), f"classifier score {which}": tables.spread(q, "classifier_score", 2)}


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
    for name in having[:check.args.size["quality_backends"]]:
        paths = best[name]
        if name in kept:
            rows.append(kept[name])
            continue
        row = {"backend": name, "as run": configs.label(paths)}
        if check.left() < MIN_SECONDS:
            rows.append(dict(row, status="not run: budget", reason=f"needs {MIN_SECONDS} s left"))
            continue
        out = check.out / f"quality-{name}{check.suffix}"
        cmd = [*main_command(check, [name], out), *configs.flags(paths)]
        rc, took = check.run(cmd, f"{out.name}.log")
        seconds += took
        scored = quality_of(out / "results.json", name)
        status = outcome(rc, bool(scored))
        rows.append(dict(row, status=status, seconds=took, **_scores(quality_of(spec_results, name), "spec"),
                         **_scores(scored, "best"), **({} if status == "ok" else {"reason": f"see logs/{out.name}.log"})))
    cut = [r for r in rows if "budget" in r["status"]]
    status = ("failed" if any(r["status"] == "failed" for r in rows)
              else f"partial: budget ({len(cut)} not run)" if cut else "ok")
    check.step("quality", {"status": status, "seconds": round(seconds, 1), "rows": rows,
                           "spec": spec_results.parent.name})


if __name__ == "__main__":
    import benchmarks
    raise SystemExit(benchmarks.internal_entry("benchmarks.gpu_check.quality_step", "the GPU check's quality step", "benchmarks.gpu_check -h"))
