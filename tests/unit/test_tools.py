"""Every tool in tools/ answers -h with its purpose and exit 0, and running -h changes nothing
(tools/train_feature_net.py, run without -h, overwrites the committed feature network)."""
from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from tests.support.processes import REPO

TOOLS = sorted(p.name for p in (REPO / "tools").iterdir() if p.suffix in (".py", ".sh") and p.name != "__init__.py")
FEATURE_NET = REPO / "common" / "metrics" / "mnist_lenet.npz"


def test_tools_holds_what_a_person_runs():
    assert TOOLS == ["envs.py", "fid_speed.py", "gpu_builds.py", "gpu_session.sh", "parity_seeds.py",
                     "train_feature_net.py", "wheelhouse.py"]


@pytest.mark.parametrize("tool", TOOLS)
def test_every_tool_answers_help(tool):
    before = hashlib.sha256(FEATURE_NET.read_bytes()).hexdigest()
    cmd = (["bash", str(REPO / "tools" / tool)] if tool.endswith(".sh")
           else [sys.executable, "-m", f"tools.{tool[:-3]}"])
    proc = subprocess.run([*cmd, "-h"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stdout.startswith("usage:"), proc.stdout[:200]
    purpose = proc.stdout.split("\n\n")[1]  # the line after usage: what the tool is for
    assert len(purpose.split()) >= 6, purpose
    assert hashlib.sha256(FEATURE_NET.read_bytes()).hexdigest() == before


def test_train_feature_net_without_out_refuses_and_trains_nothing(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tools.train_feature_net"], cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 2 and "--out" in proc.stderr.splitlines()[-1] and "epoch" not in proc.stdout


@pytest.mark.slow  # one epoch over 3,000 digits with torch: about 15 s on a loaded 2-core CPU
def test_train_feature_net_runs_into_the_file_it_is_given(tmp_path):
    """The tool runs end to end (a short version: one epoch) into --out; the committed weights
    are untouched, and what it prints is what the file holds."""
    from common.data.download import file_digest
    from common.metrics import evaluate, feature_net

    before = hashlib.sha256(FEATURE_NET.read_bytes()).hexdigest()
    out = tmp_path / "lenet.npz"
    proc = subprocess.run([sys.executable, "-m", "tools.train_feature_net", "--out", str(out), "--epochs", "1",
                           "--min-accuracy", "0"], cwd=REPO, capture_output=True, text=True, timeout=600,
                          check=False)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert hashlib.sha256(FEATURE_NET.read_bytes()).hexdigest() == before
    printed = dict(line.split(": ", 1) for line in proc.stdout.splitlines() if ": " in line)
    digest = file_digest(out, "sha256")
    assert printed["sha256"].split()[0] == digest
    accuracy = evaluate.held_out_accuracy(feature_net.FeatureNet.load(out, sha256=digest))
    assert printed["held-out accuracy (numpy forward, 2000 digits)"] == f"{accuracy:.4f}"
    assert f"wrote {out}" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lenet.npz"]  # no temporary file left
