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
    assert TOOLS == ["envs.py", "fid_speed.py", "gpu_session.sh", "parity_seeds.py", "train_feature_net.py", "wheelhouse.py"]


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
