"""Ctrl-C and SIGTERM end a run cleanly: no traceback in the terminal, the running backend's
result written with status interrupted, its iterations and timing summary, a one-line reason,
and a last line that says how to go on. A second signal during the shutdown changes nothing."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from common.harness.interrupts import TEST_SIGNAL_ENV
from common.harness.worker import FAULT_ENV
from tests.support.backends import require_backend
from tests.support.processes import REPO, offline, run_cli

BACKEND = "pytorch"


def _assert_clean_end(returncode, stdout, stderr, result, out):
    assert returncode == 130, stderr[-2000:]
    assert "Traceback" not in stdout + stderr, stderr[-3000:]
    assert result["status"] == "interrupted" and result["iterations_done"] > 0
    assert "stopped by SIG" in result["reason"] and "\n" not in result["reason"]
    summary = result["summary"]
    assert summary["steps"] == result["iterations_done"] and summary["img_per_s_median"] > 0
    last = stdout.strip().splitlines()[-1]
    assert last.startswith(f"to go on: python run_all.py --resume {out}"), stdout[-1000:]
    assert "--checkpoint-every" in last  # none was taken: it says how to take them


@pytest.mark.slow
def test_a_second_signal_inside_the_summary_and_the_write_still_leaves_valid_files(tmp_path):
    """Deterministic: the worker interrupts itself at iteration 3 (as a Ctrl-C to it alone), then
    the test hook sends it SIGTERM inside its summary and again just before result.json."""
    require_backend(BACKEND)
    out = tmp_path / "run"
    env = dict(offline(tmp_path), **{FAULT_ENV: f"{BACKEND}:interrupt@3",
                                     TEST_SIGNAL_ENV: "summary,write"})
    proc = run_cli("--backend", BACKEND, "--dataset", "synthetic", "--iters", "20",
                   "--batch-size", "8", "--out", str(out), "--quiet", env=env)
    result = json.loads((out / "backends" / BACKEND / "result.json").read_text())
    _assert_clean_end(proc.returncode, proc.stdout, proc.stderr, result, out)
    assert result["iterations_done"] == 3 and result["later_signals"] == 2
    assert result["reason"] == "stopped by SIGINT after 3 of 20 iterations"
    stored = json.loads((out / "results.json").read_text())["backends"][BACKEND]
    assert stored["summary"] == result["summary"]
    assert f"{BACKEND}: interrupted: stopped by SIGINT after 3 of 20" in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGINT to the process group", "SIGTERM to the parent"])
def test_a_real_signal_ends_the_run_cleanly(tmp_path, how):
    """As a terminal's Ctrl-C (every process of the group gets SIGINT) and as a scheduler's
    SIGTERM (the parent alone: it stops the child itself)."""
    require_backend(BACKEND)
    out = tmp_path / "run"
    env = dict(os.environ, **offline(tmp_path))
    proc = subprocess.Popen([sys.executable, str(REPO / "run_all.py"), "--backend", "all",
                             "--dataset", "synthetic", "--iters", "100000", "--batch-size", "8",
                             "--out", str(out), "--quiet"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    losses = out / "backends" / BACKEND / "losses.csv"
    deadline = time.monotonic() + 180
    # some steps logged (the CSV is flushed every 25 rows), so a summary exists to keep
    while time.monotonic() < deadline and (not losses.exists() or losses.stat().st_size < 200):
        time.sleep(0.5)
    assert losses.exists(), "the first backend never started training"
    if how.startswith("SIGINT"):
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=180)
    result = json.loads((out / "backends" / BACKEND / "result.json").read_text())
    _assert_clean_end(proc.returncode, stdout, stderr, result, out)
    results = json.loads((out / "results.json").read_text())
    assert results["backends"][BACKEND]["summary"]["steps"] > 0
    assert all(r["status"] in ("interrupted", "skipped") for r in results["backends"].values())
    assert (out / "report.md").exists()
