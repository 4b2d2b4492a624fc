"""tools/gpu_session.sh, the one command a lent GPU node runs (docs/gpu.md): its shell logic,
with a stand-in interpreter, as the real GPU check cannot run here. The GPU check's own smoke
run (tests/e2e/test_gpu_check.py) checks the folder and .gitignore this script packs."""
from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

from benchmarks.gpu_check import state

REPO = Path(__file__).resolve().parents[2]

# Stands in for python3: `-m benchmarks.gpu_check ARGS` writes a results folder with heavy files
# its .gitignore (the check's HEAVY_OUTPUTS) names, prints its arguments and "written: DIR" as
# the real one does, and exits 3.
FAKE_PYTHON = r"""#!/usr/bin/env bash
[ "$1" = -m ] && [ "$2" = pip ] && exit 0
[ "$2" = benchmarks.gpu_check ] || exit 9
shift 2
echo "gpu_check args: $*"
d=$FAKE_DIR
mkdir -p "$d/work/cell-b256/run" "$d/main/backends/pytorch" "$d/grid/cell-b256"
printf '# GPU check: partial\n' > "$d/summary.md"
printf '%s' "$FAKE_GITIGNORE" > "$d/.gitignore"
printf 'x%.0s' $(seq 1000) > "$d/work/cell-b256/run/results.json"
printf 'x' > "$d/main/backends/pytorch/weights.npz"
printf 'x' > "$d/main/backends/pytorch/quality_samples.npy"
echo '{}' > "$d/main/results.json"
echo '{}' > "$d/grid/cell-b256/throughput.json"
echo "written: $d" >&2
exit 3
"""


def _session(tmp_path, *args):
    fake = tmp_path / "python3"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHON=str(fake), OUT=str(out), FAKE_DIR=str(tmp_path / "results" / "h200-gpu-check"),
               FAKE_GITIGNORE=state.HEAVY_OUTPUTS)  # the check's own, as it writes it
    proc = subprocess.run(["bash", str(REPO / "tools" / "gpu_session.sh"), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    return proc, out


def test_session_keeps_the_check_exit_status_log_summary_and_a_light_tarball(tmp_path):
    proc, out = _session(tmp_path)
    assert proc.returncode == 3, proc.stderr  # the check's own status, through tee
    log = (out / "gpu_check.log").read_text()
    assert "gpu_check args: --budget 6" in log and "written: " in log  # the default budget, and stderr kept
    assert (out / "summary.md").read_text() == "# GPU check: partial\n"
    with tarfile.open(out / "gpu-check.tgz") as tar:
        names = set(tar.getnames())
    assert {"h200-gpu-check/summary.md", "h200-gpu-check/main/results.json",
            "h200-gpu-check/grid/cell-b256/throughput.json", "h200-gpu-check/.gitignore"} <= names
    assert not [n for n in names if "/work" in n or n.endswith((".npz", ".npy"))], names
    # partial (exit 3): the last line says how the next call continues it, from this checkout
    assert proc.stdout.splitlines()[-1].endswith("--resume benchmarks/results/h200-gpu-check --budget MIN")


def test_options_pass_through_and_out_is_required(tmp_path):
    proc, out = _session(tmp_path, "--budget", "4", "--backend", "pytorch")
    assert "gpu_check args: --budget 4 --backend pytorch" in (out / "gpu_check.log").read_text()
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    proc = subprocess.run(["bash", str(REPO / "tools" / "gpu_session.sh")], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode != 0 and "set OUT" in proc.stderr
