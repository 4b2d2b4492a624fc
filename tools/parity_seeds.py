#!/usr/bin/env python3
"""The CLI parity rule (tests/e2e/test_cli.py) at other seeds: how it was derived.

    python -m tools.parity_seeds 0-7 [--out DIR] [--backends all]

For each seed: one `run_all.py --backend all --dataset mnist --shared-init --iters 10 --seed S`
run (offline, mnist-5k), PyTorch's exact float64 run and its float32 ENSEMBLE in both Adam
conventions (tests/support/pytorch_reference.py), then per backend its max |loss - exact| per
iteration, the bound of tests/support/tolerances.py drift_bound, and diff / bound. Prints a table
and the largest ratio per backend; ratios over 1 are where the rule would fail at that seed.
Takes about 2.5 minutes per seed on 2 cores. Runs are kept in DIR (default runs/parity-seeds) and
reused.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# The sweep re-derives a test tolerance from the test's own pieces (its float64 reference, its
# bound, its offline environment), so it imports them rather than keep copies that could drift.
from tests.support.processes import offline  # noqa: E402
from tests.support.seed_list import seed_list  # noqa: E402
from tests.support.tolerances import drift_bound  # noqa: E402
import backends as registry  # noqa: E402  (the registry imports no framework)
from common import cli  # noqa: E402
from common.options import UsageError  # noqa: E402

ITERS = 10


def reference(convention: str, mode: str, seed: int, threads: str) -> np.ndarray:
    proc = subprocess.run([sys.executable, "-m", "tests.support.pytorch_reference", convention, mode,
                           str(ITERS), threads, "1", str(seed)], cwd=REPO, capture_output=True,
                          text=True, check=True, env=dict(os.environ, OMP_NUM_THREADS=threads))
    return np.array(json.loads(proc.stdout.strip().splitlines()[-1]))


def losses(path: Path) -> np.ndarray:
    with open(path) as rows:
        return np.array([(float(r["loss_d"]), float(r["loss_g"])) for r in csv.DictReader(rows)])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.parity_seeds", description=__doc__.split("\n\n")[0])
    ap.add_argument("seeds", type=seed_list, help="the seeds: a list or inclusive ranges, e.g. 0-7 or 1,7")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "parity-seeds",
                    help="where the runs are kept and reused (default: runs/parity-seeds)")
    ap.add_argument("--backends", default="all", help="run_all.py's --backend list (default: all)")
    args = ap.parse_args(argv)
    try:
        backends = cli.parse_backends(args.backends, registry.NAMES)
    except UsageError as exc:
        ap.error(str(exc))
    threads = str(os.cpu_count())  # run_all.py's default --threads, as in the test
    worst: dict[str, float] = {}
    for seed in args.seeds:
        run = args.out / f"seed{seed}"
        if not (run / "results.json").exists():
            env = dict(os.environ, **offline(Path(tempfile.mkdtemp())))
            subprocess.run(cli.run_all_command(backend=backends, dataset="mnist", shared_init=True,
                                               iters=ITERS, batch_size=64, seed=seed, out=run,
                                               quiet=True), cwd=REPO, env=env, check=True)
        cache = run / "reference.json"
        refs = json.loads(cache.read_text()) if cache.exists() else {}
        results = json.loads((run / "results.json").read_text())
        print(f"seed {seed}")
        for name, r in results["backends"].items():
            conv = r["conventions"]["adam"]
            if conv not in refs:
                refs[conv] = {mode: reference(conv, mode, seed, threads).tolist() for mode in ("float64", "ensemble")}
                cache.write_text(json.dumps(refs))
            exact, runs = np.array(refs[conv]["float64"]), np.array(refs[conv]["ensemble"])
            if name == "pytorch":
                runs = runs[1:]  # the ensemble's first member is this run itself
            diff = np.abs(losses(run / "backends" / name / "losses.csv") - exact).max(axis=1)
            ratio = diff / drift_bound(exact, runs)
            worst[name] = max(worst.get(name, 0.0), float(ratio.max()))
            print(f"  {name:10s} {conv:7s} diff {' '.join(f'{d:.1e}' for d in diff)} | "
                  f"diff/bound max {ratio.max():.2f} (iteration {int(ratio.argmax())})")
    print("largest diff/bound: " + ", ".join(f"{n} {v:.2f}" for n, v in worst.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
