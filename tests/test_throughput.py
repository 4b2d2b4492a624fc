"""benchmarks/throughput.py end to end: a tiny sweep, real subprocesses."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import require_backend
from tests.test_cli import REPO


def test_sweep_writes_one_row_per_backend_and_batch(tmp_path):
    require_backend("pytorch")
    out = tmp_path / "sweep"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.throughput", "--backend", "pytorch",
                           "--batch-sizes", "4,8", "--iters", "3", "--repeats", "2", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads((out / "throughput.json").read_text())["rows"]
    assert [(r["backend"], r["batch"], r["runs"]) for r in rows] == [("pytorch", 4, 2), ("pytorch", 8, 2)]
    for r in rows:
        lo, hi = map(float, r["range across runs"].split("-"))
        assert r["status"] == "ok" and lo <= r["img/s"] <= hi
    assert "| pytorch" in (out / "throughput.md").read_text() and "Machine:" in proc.stdout


def test_bad_batch_sizes_are_refused(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "benchmarks.throughput", "--batch-sizes", "8,x",
                           "--out", str(tmp_path / "s")], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and "--batch-sizes" in proc.stderr
    assert not (tmp_path / "s").exists()
