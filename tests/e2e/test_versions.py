"""benchmarks.versions flags a planted slowdown beyond noise and leaves an unchanged environment
within it: three stand-in environments of this interpreter (wrappers of it), one whose step
sleeps (a sitecustomize that delays the loss fetch, inside the timed step)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.backends import require_backend
from tests.support.processes import REPO, one_line_error

# Seconds added to every step: more than a Chainer mnist32 step of batch 16 takes even on this
# loaded 2-core machine (0.5-0.6 s there; about 0.03 s idle), so the slowdown is at least half.
DELAY = 1.0
SLEEPER = f"""
import time
try:
    from common import timing
except Exception:  # not the project's process (pip, a probe without the checkout)
    timing = None
if timing is not None:
    flush = timing.LossFetcher.flush
    def slow_flush(self):
        if self.pending:
            time.sleep({DELAY})
        return flush(self)
    timing.LossFetcher.flush = slow_flush
"""


def stand_in(root: Path, name: str, slow: bool) -> str:
    python = root / name / "bin" / "python"
    python.parent.mkdir(parents=True)
    prefix = ""
    if slow:
        (root / name / "site").mkdir()
        (root / name / "site" / "sitecustomize.py").write_text(SLEEPER)
        prefix = f'PYTHONPATH="{root / name / "site"}${{PYTHONPATH:+:$PYTHONPATH}}" '
    python.write_text(f'#!/bin/sh\n{prefix}exec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    return str(python)


@pytest.mark.slow
def test_a_planted_slowdown_is_beyond_noise_and_an_unchanged_environment_is_not(tmp_path):
    import importlib.util
    if importlib.util.find_spec("chainer") is None:
        pytest.skip("chainer is not installed")
    envs = [stand_in(tmp_path, n, n == "slow") for n in ("reference", "same", "slow")]
    proc = subprocess.run([sys.executable, "-m", "benchmarks.versions", "--backend", "chainer",
                           "--envs", ",".join(envs), "--repeats", "3", "--iters", "10", "--batch-size", "16",
                           "--no-parity", "--out", str(tmp_path / "out")],
                          cwd=REPO, capture_output=True, text=True, timeout=1500, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {Path(r["label"].partition("@")[2]).parts[-3]: r
            for r in json.loads((tmp_path / "out" / "versions.json").read_text())["rows"]}
    assert rows["reference"]["verdict"] == "reference"
    assert rows["same"]["verdict"] == "within noise", {k: r["img_per_s_repeats"] for k, r in rows.items()}
    measured = {k: r["img_per_s_repeats"] for k, r in rows.items()}
    assert rows["slow"]["verdict"] == "beyond noise", measured
    assert rows["slow"]["change"] < -0.3
    assert all(r["version"] == rows["reference"]["version"] for r in rows.values())
    text = (tmp_path / "out" / "versions.md").read_text()
    assert "beyond noise" in text
    assert text.startswith("Command: `python -m benchmarks.versions --backend chainer --envs ")
    assert "\n- Machine: " in text and "\n- Code: git " in text and "; started " in text
    # each label's files in one folder of its own (the path's separators made one name)
    assert len(list((tmp_path / "out" / "runs" / "spec" / "repeat-0" / "backends").iterdir())) == 3


def test_the_verdict_needs_disjoint_repeats_and_a_gap_past_their_spread():
    from benchmarks.versions import verdict
    assert verdict([100, 102, 104], [99, 101, 103]) == "within noise"    # overlapping
    assert verdict([50, 51, 52], [100, 101, 102]) == "beyond noise"      # halved
    assert verdict([90, 99, 100.5], [101, 110, 120]) == "within noise"   # disjoint, gap < spread
    assert verdict([100], [50]) == ""                                    # no spread measured


def test_the_parity_column_gives_the_largest_difference_beside_its_tolerance():
    from benchmarks.versions import markdown, parity_cell, parity_markdown
    checks = {"forward": {"max_abs": 3.4e-6, "max_rel": 3.1e-6, "tolerance": 1e-5, "comparisons": 8},
              "gradients": {"max_abs": 2e-6, "max_rel": 2.2e-6, "tolerance": 1e-4, "comparisons": 30}}
    passed = {"pass": True, "counts": {"passed": 40, "skipped": 2},
              "summary": "40 passed, 2 skipped, 90 deselected in 9.0s", "checks": checks}
    # the kind closest to its bound: forward (0.31 of it) before gradients (0.022); the tests'
    # counts without pytest's timing or the deselected tests of other backends
    assert parity_cell(passed) == "pass, max 3.1e-06 (tol 1e-05, forward); 40 passed, 2 skipped"
    # a row written before the counts had a key of their own: at the top level
    assert parity_cell({"pass": True, "passed": 40, "summary": "40 passed in 9.0s", "checks": checks}) \
        == "pass, max 3.1e-06 (tol 1e-05, forward); 40 passed"
    assert parity_cell(dict(passed, **{"pass": False})).startswith("FAIL, max 3.1e-06")
    assert parity_cell({"pass": True, "summary": "3 skipped", "checks": {}}) == \
        "pass (3 skipped; no difference recorded)"
    assert parity_cell(None) == "-"
    row = {"version": "0.6.2", "label": "jax@jax-0.6.2", "parity": passed, "img_per_s": 100.0,
           "img_per_s_repeats": [99.0, 101.0], "change": None, "verdict": "reference"}
    assert "| pass, max 3.1e-06 (tol 1e-05, forward); 40 passed, 2 skipped |" in markdown([row])
    table = parity_markdown({"jax@jax-0.6.2": passed, "jax@jax-0.7.0": {"pass": True, "checks": {}}},
                            {"jax@jax-0.6.2": "0.6.2"})
    lines = [line for line in table.splitlines() if line.startswith("|")]
    assert [c.strip() for c in lines[0].strip("|").split("|")] == ["release", "environment", "forward", "gradients"]
    assert [c.strip() for c in lines[2].strip("|").split("|")] == ["0.6.2", "jax-0.6.2", "3.1e-06 / 1e-05",
                                                                   "2.2e-06 / 0.0001"]
    assert [c.strip() for c in lines[3].strip("|").split("|")] == ["?", "jax-0.7.0", "-", "-"]
    assert parity_markdown({"jax": {"pass": True, "checks": {}}}, {}) == ""  # nothing recorded: no table


def test_redraw_rewrites_the_table_with_its_machine_from_the_runs_and_runs_nothing(tmp_path):
    """--redraw: versions.md from versions.json's rows and the first run's provenance; a table
    from before the command and times were recorded takes them from the arguments and the runs."""
    from benchmarks.versions import main
    out = tmp_path / "out"
    row = {"framework": "jax", "label": "jax@jax-0.6.2", "config": "spec", "version": "0.6.2",
           "parity": {"pass": True, "passed": 3, "checks": {}}, "img_per_s": 100.0,
           "img_per_s_repeats": [99.0, 101.0], "change": 0.0, "verdict": "reference"}
    (out / "runs" / "spec" / "repeat-0").mkdir(parents=True)
    (out / "runs" / "spec" / "repeat-0" / "results.json").write_text(json.dumps({
        "started": "2026-01-01T00:00:00+00:00", "finished": "2026-01-01T00:01:00+00:00",
        "provenance": {"cpu": "Some CPU", "cpu_count": 2, "gpus": [], "git": {"commit": "abc"}}}))
    (out / "versions.json").write_text(json.dumps({"backend": "jax", "rows": [row]}))
    assert main(["--backend", "jax", "--versions", "0.6.2", "--out", str(out), "--redraw"]) == 0
    text = (out / "versions.md").read_text()
    assert text.startswith(f"Command: `python -m benchmarks.versions --backend jax --versions 0.6.2 --out {out}`")
    assert "- Machine: Some CPU, 2 logical CPUs, no GPU" in text
    assert ("- Code: git abc; timed runs from 2026-01-01T00:00:00+00:00 to 2026-01-01T00:01:00+00:00"
            in text)
    assert "| 0.6.2     | jax-0.6.2     | pass (3 passed; no difference recorded) | 100.0" in text
    assert json.loads((out / "versions.json").read_text())["command"].endswith(f"--out {out}")
    assert not (tmp_path / ".envs").exists() and len(list(out.rglob("results.json"))) == 1  # ran nothing
    assert main(["--backend", "jax", "--versions", "0.6.2", "--out", str(tmp_path / "none"), "--redraw"]) == 2


@pytest.mark.slow
def test_a_release_s_parity_run_records_every_kind_of_check_within_its_tolerance(tmp_path):
    """run_parity sets the record's variable for the tests it runs in the given interpreter
    (here this one, as an absolute path): every kind of check the parity tests group by comes
    back with its largest difference, each within its tolerance since the tests passed."""
    require_backend("pytorch")
    from benchmarks.versions import run_parity
    got = run_parity("pytorch", sys.executable, tmp_path / "parity" / "pytorch.jsonl")
    assert got["pass"], got["summary"]
    assert {"forward", "gradients", "optimizer", "one iteration"} <= set(got["checks"])
    for kind, c in got["checks"].items():
        assert 0 <= c["max_rel"] <= c["tolerance"] and c["comparisons"] >= 1, kind
    assert (tmp_path / "parity" / "pytorch.jsonl").exists()


def test_a_release_that_cannot_be_found_or_a_bad_env_exits_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "benchmarks.versions", "--backend", "chainer",
                           "--envs", "nope", "--out", str(tmp_path / "out")], cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False)
    one_line_error(proc)
    assert "unknown environment" in proc.stderr and not (tmp_path / "out" / "versions.json").exists()


@pytest.mark.slow
def test_a_release_pip_cannot_find_exits_2_in_one_line_and_leaves_no_environment(tmp_path):
    (tmp_path / "wheels").mkdir()  # offline, and the folder holds no release at all
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    env = dict(os.environ, DCGAN_BENCH_ENVS_DIR=str(tmp_path / "envs"))
    proc = subprocess.run([sys.executable, "-m", "benchmarks.versions", "--backend", "jax",
                           "--versions", "0.6.2", "--python", python, "--wheels", str(tmp_path / "wheels"),
                           "--out", str(tmp_path / "out")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    one_line_error(proc)
    assert "jax==0.6.2" in proc.stderr and "pip index versions jax" in proc.stderr
    assert not (tmp_path / "envs" / "jax-0.6.2").exists()
