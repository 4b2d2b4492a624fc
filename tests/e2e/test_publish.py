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


def test_a_published_command_is_the_one_a_person_types():
    """The README names the folder a grid writes under benchmarks/results/, not a scratch folder."""
    from benchmarks import publish
    ran = ("python -m benchmarks.throughput --backend all --preset mnist32 --out /tmp/x/benchmarks/results/"
           "cpu-2026-mnist32 --work /tmp/scratch/w --repeats 3")
    assert publish.typed_command(ran, "batch64/cpu-2026-mnist32") == (
        "python -m benchmarks.throughput --backend all --preset mnist32 --out "
        "benchmarks/results/batch64/cpu-2026-mnist32 --repeats 3")
    assert "/tmp" not in publish.readme_section()


def test_the_paired_ratios_and_the_quality_line_are_generated_from_the_grids():
    """Each headline ratio has one home: the paired grid's own `speed / spec` and `step / bare step`,
    rendered into the README's generated section; FD of best against spec from the grid's quality rows."""
    from benchmarks import publish

    def grid(preset):
        return {"args": {"preset": preset, "configs": "spec,best", "batch_sizes": "64", "repeats": 5},
                "provenance": {"cpu": "X", "cpu_count": 2}, "started": "2026-12-02T00:00", "grid_seconds": 60,
                "command": f"python -m benchmarks.throughput --preset {preset} --out /tmp/g",
                "rows": [{"backend": "pytorch", "config": "spec (float32)", "batch": 64, "status": "ok",
                          "step / bare step": "0.955 (0.908-1.077)"},
                         {"backend": "pytorch", "config": "bf16", "batch": 64, "status": "ok",
                          "speed / spec": "1.54x (1.38-1.62)"},
                         {"backend": "chainer", "config": "spec (float32)", "batch": 64, "status": "ok",
                          "step / bare step": "1.009 (0.886-1.165)"},
                         {"backend": "chainer", "config": "best", "batch": "all", "status": "skipped",
                          "reason": "none"}],
                "quality_rows": [{"backend": "pytorch", "config": "spec (float32)", "iterations": 300,
                                  "status": "ok", "FD": "615.8 ± 8.5"},
                                 {"backend": "pytorch", "config": "bf16", "iterations": 300, "status": "ok",
                                  "FD": "585.9 ± 6.5"}]}
    text = publish.paired([("cpu-dcgan64", grid("dcgan64")), ("cpu-mnist32", grid("mnist32"))])
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("|")]
    assert rows[0] == ["backend", "mnist32 best / spec", "mnist32 spec / bare step", "dcgan64 best / spec",
                       "dcgan64 spec / bare step"]
    assert rows[2] == ["pytorch", "1.54x (1.38-1.62)", "0.955 (0.908-1.077)", "1.54x (1.38-1.62)",
                       "0.955 (0.908-1.077)"]
    assert rows[3][1] == "none" and rows[3][2] == "1.009 (0.886-1.165)"
    assert "--out benchmarks/results/batch64/cpu-mnist32`" in text
    assert publish.quality_line("mnist32", grid("mnist32")) == [
        "- mnist32, sample quality of best against spec (FD on real digits, lower is better, ± bootstrap; "
        "after 300 iterations): pytorch best 585.9 ± 6.5, spec 615.8 ± 8.5"]
