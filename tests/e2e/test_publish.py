"""docs/publish.md's two commands, exactly as written, on a tiny grid: they produce and publish
a table. Every benchmarks.* entry answers -h with every option explained."""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.backends import require_backend
from tests.support.processes import REPO


def _doc_blocks() -> list[list[list[str]]]:
    """docs/publish.md's command blocks: each `$ ` line, split as a shell would."""
    text = (REPO / "docs" / "publish.md").read_text()
    return [[shlex.split(line[2:]) for line in block.splitlines() if line.startswith("$ ")]
            for block in text.split("```")[1::2]]


def _placeholder_pattern(path: str) -> str:
    """A documented folder with <machine> and <date> as the regular expression a real one matches
    (a second folder of the same name gets -2, -3 ...)."""
    folder, file = path.rsplit("/", 1)
    pattern = re.escape(folder).replace(re.escape("<machine>"), "[a-z0-9-]+").replace(
        re.escape("<date>"), r"\d{4}-\d\d-\d\d")
    return pattern + r"(-\d+)?/" + re.escape(file)


def test_the_documented_grid_is_complete_and_its_quick_try_is_not():
    from benchmarks import grid_output, throughput
    (grid, publish), (quick, quick_publish) = _doc_blocks()
    assert grid[:3] == quick[:3] == ["python", "-m", "benchmarks.throughput"]
    assert publish[:3] == quick_publish[:3] == ["python", "-m", "benchmarks.publish"]
    assert grid_output.quick_try(vars(throughput.parse_args(grid[3:]))) == []
    assert grid_output.quick_try(vars(throughput.parse_args(quick[3:])))
    assert publish[3].startswith("benchmarks/results/") and quick_publish[3].startswith("runs/")


@pytest.mark.slow
def test_the_documented_quick_try_runs_exactly_as_written():
    """The doc's quick try, its two lines as written (the folder the first prints fills the
    second's <machine> and <date>); what it writes under runs/ is removed afterwards."""
    require_backend("pytorch")
    _, (grid_cmd, publish_cmd) = _doc_blocks()
    proc = subprocess.run([sys.executable, *grid_cmd[1:]], cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    wrote = re.search(r"^Wrote throughput.md .* into:\n  (\S+)/$", proc.stdout, re.MULTILINE)
    work = re.search(r"^Raw run folders:\n  (\S+)/$", proc.stdout, re.MULTILINE)
    try:
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert max(map(len, proc.stdout.splitlines())) <= 120, proc.stdout
        folder = wrote.group(1)
        assert f"Publish it:\n  python -m benchmarks.publish {folder}/throughput.json" in proc.stdout
        assert "A quick try, not a complete grid" in proc.stdout
        assert re.fullmatch(_placeholder_pattern(publish_cmd[3]), f"{folder}/throughput.json"), folder
        proc = subprocess.run([sys.executable, *publish_cmd[1:3], f"{folder}/throughput.json"], cwd=REPO,
                              capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
        (row,) = [line for line in proc.stdout.splitlines() if line.startswith("| pytorch")]
        assert re.search(r"\| \d+\.\d", row), row  # a measured img/s in the spec column
        assert "a quick try, not a complete grid" in proc.stdout
    finally:
        for found in (wrote, work):
            if found and (REPO / found.group(1)).is_relative_to(REPO / "runs"):
                shutil.rmtree(REPO / found.group(1), ignore_errors=True)


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
        "- mnist32, sample quality of best against spec (FD on real digits, lower is better, after 300 "
        "iterations; one seed each, ± the evaluator's own error, far below the spread between seeds, "
        "so no ranking: docs/quality.md): pytorch best 585.9 ± 6.5, spec 615.8 ± 8.5"]


def test_each_grid_names_the_releases_its_rows_ran_and_two_grids_of_one_preset_keep_their_columns():
    """The versions under a table come from the grid's own provenance (plain rows) and its
    environments (NAME@ENV rows), per environment with its Python and numpy; a second grid of the
    same preset (the same backends at other releases) gets columns of its own, not the first's."""
    from benchmarks import publish
    plain = {"numpy": "1.26.4", "torch": "2.13.0+cpu", "jax": "0.6.2", "pandas": "3.0.6"}
    newest = {"numpy": "2.5.5", "jax": "0.12.1", "jaxlib": "0.12.1", "flax": "0.12.12"}

    def grid(backends, ratio):
        return {"args": {"preset": "mnist32", "configs": "spec,best", "batch_sizes": "64", "repeats": 5},
                "started": "2026-12-07T00:00", "grid_seconds": 60,
                "provenance": {"cpu": "X", "cpu_count": 2, "python": "3.11.7", "packages": plain},
                "environments": {"jax@newest": {"python": "3.12.1", "packages": newest}},
                "command": "python -m benchmarks.throughput --out /tmp/g",
                "rows": [{"backend": b.partition("@")[0], "label": b, "config": "spec (float32)", "batch": 64,
                          "status": "ok", "step / bare step": ratio} for b in backends]}
    mixed = grid(["pytorch", "jax@newest"], "1.01")
    assert publish.grid_versions(mixed) == ("torch 2.13.0+cpu (Python 3.11.7, numpy 1.26.4); "
                                            "in newest: jax 0.12.1, jaxlib 0.12.1, flax 0.12.12 (Python 3.12.1, numpy 2.5.5)")
    assert publish.grid_versions(grid(["jax"], "1.0")) == "jax 0.6.2 (Python 3.11.7, numpy 1.26.4)"
    text = publish.paired([("a", grid(["pytorch", "jax"], "0.95")), ("b", mixed)])
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("|")]
    assert rows[0] == ["backend", "mnist32 (a) best / spec", "mnist32 (a) spec / bare step",
                       "mnist32 (b) best / spec", "mnist32 (b) spec / bare step"]
    assert rows[2][1:] == ["not measured", "0.95", "not measured", "1.01"]  # pytorch in both grids
    assert "versions: in newest: jax 0.12.1" not in text and "; versions: torch 2.13.0+cpu" in text


def test_a_folder_names_the_machine_and_a_second_grid_of_the_day_gets_its_own(tmp_path, monkeypatch):
    from benchmarks import throughput
    from common import sysinfo
    monkeypatch.setattr(sysinfo, "gpu_models", list)
    monkeypatch.setattr(throughput.os, "cpu_count", lambda: 2)
    names = {}
    for model in ("AMD EPYC 7B13 64-Core Processor", "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz"):
        monkeypatch.setattr(sysinfo, "cpu_model", lambda model=model: model)
        names[model] = throughput.machine_slug()
    assert list(names.values()) == ["amd-epyc-7b13-2core", "intel-xeon-platinum-8481c-2core"]
    monkeypatch.setattr(sysinfo, "gpu_models", lambda: ["NVIDIA H100 80GB HBM3, 550.54.15"])
    assert throughput.machine_slug() == "nvidia-h100-80gb-hbm3"
    first = throughput.new_folder(tmp_path, "x-2026-12-07-mnist32")
    first.mkdir()
    assert throughput.new_folder(tmp_path, "x-2026-12-07-mnist32").name == "x-2026-12-07-mnist32-2"


def test_the_readme_headline_leaves_a_quick_try_out(tmp_path, monkeypatch, capsys):
    import json

    from benchmarks import publish
    committed = REPO / "benchmarks" / "results" / "cpu-2core-2026-12-02-mnist32" / "throughput.json"
    doc = json.loads(committed.read_text())
    quick = dict(doc, args=dict(doc["args"], backend="pytorch", configs="spec", images=128, min_iters=2))
    for name, d in (("box-2026-12-07-mnist32", doc), ("box-2026-12-07-mnist32-quick", quick)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "throughput.json").write_text(json.dumps(d))
    monkeypatch.setattr(publish, "RESULTS_DIR", tmp_path)
    section = publish.readme_section()
    assert "box-2026-12-07-mnist32/throughput.md" in section and "quick-try" not in section
    assert "left out box-2026-12-07-mnist32-quick: a quick try (--backend pytorch (not all)" in capsys.readouterr().err


def test_the_grid_on_a_terminal_fits_120_columns_and_names_its_folder():
    """The committed grid with every column (five backends, spec, best and the bare loop, three
    batch sizes, repeats): the terminal gets the columns that fit, the reasons below, its folder."""
    import json

    from benchmarks import grid_output
    doc = json.loads((REPO / "benchmarks" / "results" / "cpu-2core-2026-12-02-mnist32" / "throughput.json").read_text())
    assert max(len(line) for line in grid_output.render(doc).splitlines()) > 120  # the full table does not fit
    text = grid_output.terminal(doc, Path("benchmarks/results/box-2026-12-07-mnist32"))
    assert max(len(line) for line in text.splitlines()) <= 120, text
    header = text.splitlines()[0]
    assert all(c in header for c in ("backend", "config", "batch", "img/s", "speed / spec"))
    assert "- mxnet best: none" in text
    assert text.splitlines()[-3:] == ["  benchmarks/results/box-2026-12-07-mnist32/", "Publish it:",
                                      "  python -m benchmarks.publish benchmarks/results/box-2026-12-07-mnist32/throughput.json"]


def test_a_none_reason_says_where_it_was_measured():
    from benchmarks import configs
    for name in ("mxnet", "chainer"):
        reason = configs.fast_paths("best", name, "cpu")
        assert reason.startswith("none: ") and "measured on the 2-core AMD EPYC development VM, not by this grid" in reason
