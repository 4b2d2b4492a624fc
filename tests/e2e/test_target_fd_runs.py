"""--target-fd end to end at a tiny setting: a generous target stops training at the first
check, an unreachable one runs every iteration; results, report and terminal say so."""
from __future__ import annotations

import csv
import json

import pytest

from tests.support.backends import require_backend
from tests.support.processes import run_cli

# 20 iterations of batch 8, a check every 10. An untrained G scores FD ~2800 against the digits
# (docs/quality.md), real digits ~4: FD <= 1e5 holds at the first check, FD <= 1e-3 never.
TINY = ("--backend", "pytorch", "--dataset", "mnist", "--iters", "20", "--batch-size", "8",
        "--quality-every", "10", "--quiet")


def run(tmp_path, offline_env, target: str, name: str):
    out = tmp_path / name
    proc = run_cli(*TINY, "--target-fd", target, "--out", str(out), env=offline_env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, out, json.loads((out / "results.json").read_text())


def step_seconds(out, iterations: int) -> float:
    with open(out / "backends" / "pytorch" / "losses.csv") as f:
        rows = list(csv.DictReader(f))
    return sum(float(r["step_seconds"]) for r in rows[:iterations])


@pytest.mark.slow
def test_a_reachable_target_stops_training_at_the_check_that_reached_it(tmp_path, offline_env):
    require_backend("pytorch")
    proc, out, results = run(tmp_path, offline_env, "1e5", "reached")
    r = results["backends"]["pytorch"]
    assert r["status"] == "ok" and r["iterations_done"] == 10  # stopped at the first check
    ttt = r["time_to_target"]
    assert ttt["target_fd"] == 1e5 and ttt["reached"] and ttt["iterations"] == 10
    # The training seconds are the step times of the 10 iterations (losses.csv), the check's
    # evaluation not among them; the CSV rounds nothing (repr), so only summation order differs.
    assert ttt["seconds"] == pytest.approx(step_seconds(out, 10), rel=1e-9)
    assert r["summary"]["quality_probe_seconds"] > 0
    assert results["config"]["quality"]["target_fd"] == 1e5
    assert "## Time to target" in (out / "report.md").read_text()
    assert "time to FD <= 100000" in proc.stdout


@pytest.mark.slow
def test_an_unreachable_target_trains_every_iteration_and_says_so(tmp_path, offline_env):
    require_backend("pytorch")
    proc, _, results = run(tmp_path, offline_env, "1e-3", "missed")
    r = results["backends"]["pytorch"]
    assert r["status"] == "ok" and r["iterations_done"] == 20
    assert r["time_to_target"] == {"target_fd": 1e-3, "reached": False, "iterations": None,
                                   "seconds": None}
    assert [p["iteration"] for p in r["quality_curve"]] == [0, 10, 20]
    assert "not reached" in proc.stdout


@pytest.mark.slow
def test_the_table_command_runs_every_seed_and_writes_json_and_markdown(tmp_path, offline_env):
    import os
    import subprocess
    import sys

    from tests.support.processes import REPO
    require_backend("pytorch")
    out, runs = tmp_path / "table", tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.time_to_target", "--backend", "pytorch",
         "--target-fd", "1e5", "--iters", "10", "--quality-every", "10", "--batch-size", "8",
         "--seeds", "0,1,2", "--runs", str(runs), "--out", str(out)],
        cwd=REPO, env=dict(os.environ, **offline_env), capture_output=True, text=True, timeout=1500, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((out / "time_to_target.json").read_text())
    assert [(r["seed"], r["reached"], r["iterations"]) for r in doc["records"]] == [
        (0, True, 10), (1, True, 10), (2, True, 10)]
    assert doc["rows"][0]["reached"] == "3/3 seeds"
    assert "| pytorch" in (out / "time_to_target.md").read_text()
    assert (runs / "results.json").exists() and (runs / "seeds" / "2").is_dir()
