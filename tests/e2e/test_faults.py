"""Fault isolation through the real CLI: one backend fails on purpose (common/harness/worker.py
FAULT_ENV, a hook only tests set), the others finish, and the run says what happened."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

import backends
from common.harness.worker import FAULT_ENV
from tests.support.backends import require_backend
from tests.support.processes import REPO, offline, run_cli

FAULTY = "pytorch"


def _bystander() -> str:
    """Another backend that can run here (the one that must finish despite the fault)."""
    for name in ("chainer", "mxnet", "tensorflow"):
        if not backends.unavailable_reason(name):
            return name
    pytest.skip("needs a second runnable backend besides pytorch")


def _run_with_fault(tmp_path, fault: str, *extra):
    require_backend(FAULTY)
    other = _bystander()
    out = tmp_path / "run"
    env = dict(offline(tmp_path), **{FAULT_ENV: f"{FAULTY}:{fault}"})
    proc = run_cli("--backend", f"{FAULTY},{other}", "--dataset", "synthetic", "--iters", "3",
                   "--batch-size", "8", "--out", str(out), "--quiet", *extra, env=env)
    results = json.loads((out / "results.json").read_text())
    assert results["backends"][other]["status"] == "ok", results["backends"][other]
    return proc, results["backends"][FAULTY], (out / "report.md").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("fault,status,reason", [
    ("raise@1", "failed", "RuntimeError: injected fault"),
    ("oom@1", "oom", "out of memory"),
    ("segfault@1", "failed", "killed by signal 11"),
    ("kill@1", "failed", "killed by signal 9"),
])
def test_a_failing_backend_is_recorded_and_the_others_finish(tmp_path, fault, status, reason):
    proc, result, report_md = _run_with_fault(tmp_path, fault)
    assert proc.returncode == 1
    assert result["status"] == status and reason in result["reason"]
    assert any("injected fault" in line for line in result["stderr_tail"])
    assert reason in report_md


@pytest.mark.slow
def test_a_hanging_backend_is_stopped_by_timeout(tmp_path):
    t0 = time.monotonic()
    proc, result, report_md = _run_with_fault(tmp_path, "hang@1", "--timeout", "20")
    assert proc.returncode == 1
    assert result["status"] == "timeout" and "--timeout" in result["reason"]
    assert time.monotonic() - t0 < 120  # stopped, not waited out (the hang is an hour)
    assert "timeout" in report_md


@pytest.mark.slow
def test_divergence_stops_that_backend_at_the_step_and_keeps_its_curve(tmp_path):
    proc, result, _ = _run_with_fault(tmp_path, "nan@2")
    assert proc.returncode == 1
    assert result["status"] == "diverged" and result["diverged_at"] == 2
    assert result["iterations_done"] == 3  # iterations 0, 1 and the non-finite 2 are logged


# ----- bad input that only shows up on disk or on the machine -----
def test_output_folder_that_cannot_be_created_is_one_line_exit_2(tmp_path, offline_env):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = run_cli("--dataset", "synthetic", "--out", str(blocker / "run"), env=offline_env)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "cannot create run folder" in line and "writable --out" in line


def test_gpu_requested_without_any_gpu_is_one_line_exit_2(tmp_path, offline_env):
    from common import sysinfo
    if sysinfo.gpu_models():
        pytest.skip("a GPU is visible here")
    proc = run_cli("--dataset", "synthetic", "--device", "gpu", "--out", str(tmp_path / "run"),
                   env=offline_env)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "--device gpu" in line and "--device cpu" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("damage", ["wrong-magic", "truncated"])
def test_bad_idx_file_in_data_dir_is_one_line_exit_2(tmp_path, offline_env, damage):
    from common.data import idx
    data_dir = tmp_path / "mnist"
    data_dir.mkdir()
    images = np.zeros((10, 28, 28), np.uint8)
    labels = np.arange(10, dtype=np.uint8)
    (data_dir / "train-labels-idx1-ubyte").write_bytes(idx.write_idx(labels))
    blob = idx.write_idx(images)
    (data_dir / "train-images-idx3-ubyte").write_bytes(b"\x12\x34" + blob[2:] if damage == "wrong-magic" else blob[:-100])
    proc = run_cli("--dataset", "mnist", "--data-dir", str(data_dir), "--batch-size", "2",
                   "--out", str(tmp_path / "run"), env=offline_env)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "train-images-idx3-ubyte" in line


@pytest.fixture
def offline_env(tmp_path):
    return offline(tmp_path)


@pytest.mark.slow
def test_missing_framework_is_skipped_under_all_and_fails_when_named(tmp_path):
    require_backend(FAULTY)
    other = _bystander()
    env = dict(offline(tmp_path), **{backends.HIDE_ENV: backends.REGISTRY[other].framework})
    common = ["--dataset", "synthetic", "--iters", "2", "--batch-size", "8", "--quiet"]
    proc = run_cli("--backend", "all", *common, "--out", str(tmp_path / "all"), env=env)
    results = json.loads((tmp_path / "all" / "results.json").read_text())
    skipped = results["backends"][other]
    assert skipped["status"] == "skipped" and "pip install" in skipped["reason"]
    assert proc.returncode == 0, [(n, r["status"]) for n, r in results["backends"].items()]
    proc = run_cli("--backend", f"{FAULTY},{other}", *common, "--out", str(tmp_path / "named"), env=env)
    assert proc.returncode != 0
    assert json.loads((tmp_path / "named" / "results.json").read_text())["backends"][FAULTY]["status"] == "ok"


# ----- atomic writes under SIGKILL -----
WRITER = """
import sys
from common import atomic
a, b = b"A" * 4_000_000, b"B" * 4_000_000
atomic.write_bytes(sys.argv[1], a)
print("ready", flush=True)
while True:
    atomic.write_bytes(sys.argv[1], b)
    atomic.write_bytes(sys.argv[1], a)
"""


@pytest.mark.slow
def test_a_writer_killed_at_any_moment_leaves_a_whole_file(tmp_path):
    """SIGKILL (no cleanup runs) at 10 moments in a loop of 4 MB rewrites: the file is always
    all-A or all-B, never a mix or a short file. Leftover temporary files are allowed."""
    target = tmp_path / "results.json"
    rng = np.random.default_rng(0)
    for _ in range(10):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], cwd=REPO,
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(float(rng.uniform(0.0, 0.3)))
        proc.kill()
        proc.wait()
        data = target.read_bytes()
        assert len(data) == 4_000_000 and data in (b"A" * 4_000_000, b"B" * 4_000_000)
