"""Every backend's process and every bare loop start with one environment: the thread count and
glibc's allocator settings (common/harness/child.py), so no backend's number owes anything to an
allocator the others did not get; what the user exported wins."""
from __future__ import annotations

import argparse
import subprocess

from benchmarks import throughput
from common.harness import child


def test_a_worker_gets_threads_and_the_allocator_settings(monkeypatch):
    for name in [*child.ALLOCATOR_ENV, "OMP_NUM_THREADS", "TF_CPP_MIN_LOG_LEVEL"]:
        monkeypatch.delenv(name, raising=False)
    env = child.process_env(3)
    assert env["OMP_NUM_THREADS"] == "3" and env["TF_CPP_MIN_LOG_LEVEL"] == "2"
    assert {k: env[k] for k in child.ALLOCATOR_ENV} == child.ALLOCATOR_ENV
    assert "TF_CPP_MIN_LOG_LEVEL" not in child.process_env(3, quiet=False)
    # the values glibc reads: a 32 MiB mmap threshold, no trimming below 4 GB, 256 MiB top pad
    assert int(env["MALLOC_MMAP_THRESHOLD_"]) == 33554432 and int(env["MALLOC_TOP_PAD_"]) == 268435456


def test_what_the_user_exported_wins(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    env = child.process_env(2)
    assert env["MALLOC_TRIM_THRESHOLD_"] == "131072" and env["OMP_NUM_THREADS"] == "1"
    assert env["MALLOC_TOP_PAD_"] == child.ALLOCATOR_ENV["MALLOC_TOP_PAD_"]


def test_the_bare_loop_starts_with_the_workers_environment(monkeypatch, tmp_path):
    seen = {}

    def fake_run(cmd, **kwargs):
        seen["env"] = kwargs.get("env")
        return subprocess.CompletedProcess(cmd, 1, "", "stopped here")

    monkeypatch.setattr(subprocess, "run", fake_run)
    args = argparse.Namespace(threads=2, device="cpu", preset="mnist32", images=64, min_iters=2)
    assert throughput.bare_cell(args, "pytorch", 8, tmp_path)["status"] == "failed"
    assert seen["env"] == child.process_env(2)



def test_the_peak_process_starts_with_the_cells_environment(monkeypatch, tmp_path):
    """The GEMM peak divides every cell's rate: it is measured with the allocator settings and
    thread count the cells get (the user's exports win there too), not the grid's bare env."""
    from benchmarks import peak
    monkeypatch.delenv("MALLOC_TOP_PAD_", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "123")
    _, env = peak.command(["fp32"], "cpu", 3, 1.0, tmp_path / "p.json")
    assert env == child.process_env(3)
    assert env["OMP_NUM_THREADS"] == "3"
    assert env["MALLOC_TOP_PAD_"] == child.ALLOCATOR_ENV["MALLOC_TOP_PAD_"]
    assert env["MALLOC_TRIM_THRESHOLD_"] == "123"
