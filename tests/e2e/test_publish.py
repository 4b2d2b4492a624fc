"""docs/publish.md's two commands, exactly as written, on a tiny grid: they produce and publish
a table. Every benchmarks.* entry answers -h with every option explained."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest

from tests.support.backends import require_backend
from tests.support.processes import REPO

TINY = ["--backend", "pytorch", "--configs", "spec", "--batch-sizes", "64", "--images", "128",
        "--min-iters", "2"]


def _doc_commands() -> list[list[str]]:
    text = (REPO / "docs" / "publish.md").read_text()
    block = text.split("```")[1]
    return [shlex.split(line[2:]) for line in block.splitlines() if line.startswith("$ ")]


@pytest.mark.slow
def test_the_two_documented_commands_produce_and_publish_a_table(tmp_path):
    require_backend("pytorch")
    grid_cmd, publish_cmd = _doc_commands()
    assert grid_cmd[:3] == ["python", "-m", "benchmarks.throughput"]
    assert publish_cmd[:3] == ["python", "-m", "benchmarks.publish"]
    # the tiny grid the doc names, into a temporary folder instead of benchmarks/results/
    tiny = shlex.split(re.search(r"quick try.*?add `([^`]+)`", (REPO / "docs" / "publish.md").read_text()
                                 .replace("\n  ", " "), re.S).group(1))
    assert tiny == TINY
    grid = tmp_path / "mybox-2026-12-01-mnist32"
    proc = subprocess.run([sys.executable, *grid_cmd[1:], *tiny, "--out", str(grid),
                           "--work", str(tmp_path / "work")], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (grid / "throughput.json").exists() and (grid / "throughput.md").exists()
    placeholder = "benchmarks/results/<machine>-<date>-mnist32"
    args = [a.replace(placeholder, str(grid)) for a in publish_cmd[1:]]
    proc = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (row,) = [line for line in proc.stdout.splitlines() if line.startswith("| pytorch")]
    assert re.search(r"\| \d+\.\d", row), row  # a measured img/s in the spec column
    assert "mybox-2026-12-01-mnist32" in proc.stdout  # the grid it came from, with its command


@pytest.mark.parametrize("entry", ["benchmarks.throughput", "benchmarks.publish",
                                   "benchmarks.scaling", "benchmarks.bare"])
def test_every_benchmark_entry_explains_every_option(entry):
    proc = subprocess.run([sys.executable, "-m", entry, "-h"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    body = proc.stdout.split("options:", 1)[1]
    entries = re.split(r"\n  (?=-)", body.split("\n\n")[0])[1:]
    assert entries
    for e in entries:
        flag = e.split()[0]
        text = " ".join(e.split()[1:])
        assert len(text) > 10, f"{entry} {flag} has no help"
        if flag not in ("-h,", "--help"):
            assert text.count("default") <= 1, f"{entry} {flag}: default shown twice"
