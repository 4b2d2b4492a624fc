"""tools/gpu_session.sh, the one command a GPU node without network runs (docs/gpu.md): its shell logic,
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


def _session(tmp_path, *args, script=REPO / "tools" / "gpu_session.sh"):
    fake = tmp_path / "python3"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHON=str(fake), FAKE_DIR=str(tmp_path / "results" / "h200-gpu-check"),
               FAKE_GITIGNORE=state.HEAVY_OUTPUTS)  # the check's own, as it writes it
    proc = subprocess.run(["bash", str(script), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    return proc, out


def test_session_keeps_the_check_exit_status_log_summary_and_a_light_tarball(tmp_path):
    proc, out = _session(tmp_path, "--out", str(tmp_path / "out"))
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


def test_options_pass_through_and_the_output_folder_defaults_to_runs(tmp_path):
    proc, out = _session(tmp_path, "--out", str(tmp_path / "out"), "--budget", "4", "--backend", "pytorch")
    assert "gpu_check args: --budget 4 --backend pytorch" in (out / "gpu_check.log").read_text()
    # no --out: runs/gpu-session/ of the checkout the script sits in (a copy here, not this one)
    (tmp_path / "clone" / "tools").mkdir(parents=True)
    script = tmp_path / "clone" / "tools" / "gpu_session.sh"
    script.write_text((REPO / "tools" / "gpu_session.sh").read_text())
    proc, _ = _session(tmp_path, script=script)
    assert proc.returncode == 3, proc.stderr
    assert (tmp_path / "clone" / "runs" / "gpu-session" / "gpu-check.tgz").exists()
    assert "runs/gpu-session/ holds gpu_check.log, summary.md and gpu-check.tgz" in proc.stdout


def test_out_without_a_folder_is_bad_usage(tmp_path):
    proc, _ = _session(tmp_path, "--out")
    assert proc.returncode == 2 and "--out needs a folder" in proc.stderr
