"""The seed study command: adopting run folders, going on after an interruption, the analysis
and the report's use of it (benchmarks/seed_study.py, common/results/seed_spread.py)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks import seed_study
from common.results import compare, markdown, seed_spread, seeds, tables
from common.results.schema import LOSS_COLUMNS

NAMES = ("pytorch", "jax")


def _quality(fd: float) -> dict:
    q = {"n": 1000, "fd": fd, "fd_std": 5.0, "kid": fd * 40, "kid_std": 100.0, "classifier_score": 4.0,
         "classifier_score_std": 0.2, "histogram": [100] * 10, "modes_covered": 10, "kl_to_uniform": 0.05}
    for k in ("precision", "recall", "density", "coverage"):
        q[k], q[k + "_std"] = 0.3, 0.01
    return q


def _backends(fds: dict) -> dict:
    return {n: {"backend": n, "status": "ok", "iterations_done": 500, "quality": _quality(fd),
                "final_losses": {"loss_d": 0.5, "loss_g": 2.0}} for n, fd in fds.items()}


def _results(seed: int, fds: dict, iters: int = 500, **extra) -> dict:
    return {"schema_version": 1, "command": "python run_all.py ...", "finished": "2026-12-07T00:00:00",
            "config": {"dataset": "mnist", "preset": "mnist32", "iters": iters, "batch_size": 64, "seed": seed,
                       "shared_init": True, "bf16": False, "devices": 1, "nodes": 1, "sync_bn": False,
                       "device": "auto"},
            "dataset": {"name": "mnist-5k", "n": 5000},
            "provenance": {"cpu": "Test CPU", "packages": {"numpy": "1.26.4", "torch": "2.13.0+cpu", "jax": "0.6.2"},
                           "git": {"commit": "abc"}},
            "backends": _backends(fds), **extra}


def _losses(folder: Path, names=NAMES):
    for n in names:
        (folder / "backends" / n).mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"backend": n, "iteration": np.arange(3), "loss_d": 0.5, "loss_g": 2.0,
                      "step_seconds": 0.1}).to_csv(folder / "backends" / n / "losses.csv", index=False,
                                                   columns=list(LOSS_COLUMNS))


def _run_folder(folder: Path, seed: int, fds: dict, **extra) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(_results(seed, fds, **extra)))
    _losses(folder)
    return folder


def test_adopts_every_seed_of_a_seeds_folder_once(tmp_path):
    run = _run_folder(tmp_path / "run", 0, {"pytorch": 300.0, "jax": 310.0},
                      by_seed={"1": _backends({"pytorch": 400.0, "jax": 380.0})})
    run_results = json.loads((run / "results.json").read_text())
    run_results["config"]["seeds"] = [0, 1]
    (run / "results.json").write_text(json.dumps(run_results))
    _losses(run / "seeds" / "1")
    inputs = tmp_path / "inputs"
    assert seed_study.adopt(run, inputs) == ["mnist32-500 seed 0", "mnist32-500 seed 1"]
    one = json.loads((inputs / "mnist32-500" / "seed-1" / "results.json").read_text())
    assert one["config"]["seed"] == 1 and "seeds" not in one["config"] and "by_seed" not in one
    assert one["backends"]["pytorch"]["quality"]["fd"] == 400.0
    assert len(pd.read_csv(inputs / "mnist32-500" / "seed-1" / "losses.csv")) == 6
    assert seed_study.adopt(run, inputs) == []  # already there: nothing taken twice


def test_a_run_at_another_setting_or_unfinished_is_not_adopted(tmp_path):
    other = _run_folder(tmp_path / "other", 0, {"pytorch": 300.0})
    doc = json.loads((other / "results.json").read_text())
    doc["config"]["iters"] = 40
    (other / "results.json").write_text(json.dumps(doc))
    assert seed_study.adopt(other, tmp_path / "inputs") == []
    failed = _run_folder(tmp_path / "failed", 0, {"pytorch": 300.0})
    doc = json.loads((failed / "results.json").read_text())
    doc["backends"]["pytorch"]["status"] = "failed"
    (failed / "results.json").write_text(json.dumps(doc))
    assert seed_study.adopt(failed, tmp_path / "inputs") == []


def test_an_interrupted_seed_that_cannot_resume_is_set_aside_and_trained_again(tmp_path, monkeypatch):
    runs, inputs = tmp_path / "runs", tmp_path / "inputs"
    stale = runs / "mnist32-2000" / "seed-0"
    stale.mkdir(parents=True)
    (stale / "results.json").write_text(json.dumps({**_results(0, {"pytorch": 1.0}), "finished": None}))
    commands = []

    def fake_call(cmd, cwd):  # the study's child: run_all.py, which writes a finished run
        commands.append(cmd)
        if "--resume" in cmd:
            return 2  # run_all.py refuses to resume this folder
        out = Path(cmd[cmd.index("--out") + 1])
        _run_folder(out, int(cmd[cmd.index("--seed") + 1]), {"pytorch": 200.0, "jax": 210.0}, iters=2000)
        return 0

    monkeypatch.setattr(seed_study.subprocess, "call", fake_call)
    assert seed_study.train_seed("mnist32-2000", 0, runs, inputs)
    assert [p.name.startswith("seed-0.unfinished-") for p in (runs / "mnist32-2000").iterdir()].count(True) == 1
    assert commands[0][-3:] == ["--resume", str(stale), "--quiet"]
    trained = commands[1]
    assert "--iters" in trained and "2000" in trained and "--quiet" in trained
    assert trained[trained.index("--checkpoint-every") + 1] == str(seed_study.CHECKPOINT_EVERY)
    assert (inputs / "mnist32-2000" / "seed-0" / "results.json").exists()
    assert seed_study.train_seed("mnist32-2000", 0, runs, inputs) and len(commands) == 2  # kept


def test_an_interrupted_seed_is_resumed_not_trained_again(tmp_path, monkeypatch):
    runs, inputs = tmp_path / "runs", tmp_path / "inputs"
    folder = runs / "mnist32-2000" / "seed-1"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({**_results(1, {"pytorch": 1.0}), "finished": None}))
    commands = []

    def fake_resume(cmd, cwd):  # run_all.py --resume: finishes the run in its own folder
        commands.append(cmd)
        _run_folder(folder, 1, {"pytorch": 200.0, "jax": 210.0}, iters=2000)
        return 0

    monkeypatch.setattr(seed_study.subprocess, "call", fake_resume)
    assert seed_study.train_seed("mnist32-2000", 1, runs, inputs)
    assert len(commands) == 1 and "--resume" in commands[0]
    assert [p.name for p in (runs / "mnist32-2000").iterdir()] == ["seed-1"]  # nothing set aside
    assert (inputs / "mnist32-2000" / "seed-1" / "results.json").exists()


def test_a_finished_seed_is_kept_even_when_its_report_failed(tmp_path, monkeypatch):
    """run_all.py exits 1 when only the report fails after every backend trained and was scored:
    the seed's numbers are filed, not trained again."""
    runs, inputs = tmp_path / "runs", tmp_path / "inputs"

    def report_failed(cmd, cwd):
        _run_folder(Path(cmd[cmd.index("--out") + 1]), 2, {"pytorch": 200.0, "jax": 210.0}, iters=2000)
        return 1

    monkeypatch.setattr(seed_study.subprocess, "call", report_failed)
    assert seed_study.train_seed("mnist32-2000", 2, runs, inputs)
    assert (inputs / "mnist32-2000" / "seed-2" / "results.json").exists()


def test_an_interrupt_during_a_seed_stops_the_study(tmp_path, monkeypatch):
    monkeypatch.setattr(seed_study.subprocess, "call", lambda cmd, cwd: seed_study.INTERRUPTED)
    with pytest.raises(KeyboardInterrupt):
        seed_study.train_seed("mnist32-2000", 0, tmp_path / "runs", tmp_path / "inputs")


def _study_inputs(inputs: Path, seeds: int = 4) -> dict:
    rng = np.random.default_rng(0)
    for s in range(seeds):
        folder = inputs / "mnist32-500" / f"seed-{s}"
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps(
            _results(s, {"pytorch": 400 + 50 * rng.standard_normal(), "jax": 400 + 50 * rng.standard_normal()})))
    return seed_study.write_analysis(inputs)


def test_the_analysis_writes_one_record_per_backend_and_seed_and_a_verdict(tmp_path):
    study = _study_inputs(tmp_path)
    assert len(study["records"]) == 8
    rec = study["records"][0]
    assert {"backend", "seed", "fd", "kid", "classifier_score", "precision", "recall", "machine", "versions"} <= set(rec)
    assert rec["versions"] == {"numpy": "1.26.4", "torch": "2.13.0+cpu"}
    s = study["settings"]["mnist32-500"]
    assert s["summary"]["pytorch"]["fd"]["n"] == 4 and s["machines"] == ["Test CPU"]
    assert s["key"]["dataset"] == "mnist-5k" and s["key"]["iters"] == 500
    md = (tmp_path / "study.md").read_text()
    assert "Does any framework reach a different quality here?" in md and "FD 95% interval" in md
    assert json.loads((tmp_path / "study.json").read_text())["settings"]["mnist32-500"]["test"]["p"] is not None


def test_a_one_seed_report_gives_the_matched_study_spread_or_says_none_matches(tmp_path):
    study = _study_inputs(tmp_path)
    run = _results(7, {"pytorch": 380.0, "jax": 450.0})
    m = seed_spread.match(run, study)
    assert m and m["name"] == "mnist32-500" and m["versions_differ"] == {}
    run["provenance"]["packages"]["torch"] = "2.15.0"  # another release: the study's is named
    assert seed_spread.match(run, study)["versions_differ"]["pytorch"]["torch"] == ("2.13.0+cpu", "2.15.0")
    run["config"]["iters"] = 40
    assert seed_spread.match(run, study) is None


def test_a_row_in_another_environment_is_matched_by_its_backend_and_its_own_versions(tmp_path, monkeypatch):
    study = _study_inputs(tmp_path)
    run = _results(7, {"pytorch": 380.0, "jax": 450.0})
    run["schema_version"] = 2
    run["backends"]["jax@newest"] = dict(run["backends"].pop("jax"), backend="jax", environment={
        "name": "newest", "packages": {"numpy": "2.5.5", "jax": "0.12.1"}})
    m = seed_spread.match(run, study)
    assert m["fd_std"]["jax@newest"] == study["settings"]["mnist32-500"]["summary"]["jax"]["fd"]["std"]
    assert m["n"]["jax@newest"] == 4 and "jax" not in m["fd_std"]
    # its own environment's versions, not the parent's (provenance: jax 0.6.2, numpy 1.26.4)
    assert m["versions_differ"] == {"jax@newest": {"numpy": ("1.26.4", "2.5.5"), "jax": ("0.6.2", "0.12.1")}}
    monkeypatch.setattr(seed_spread, "load", lambda path=None: study)
    rows = {r["samples"]: r for r in tables.quality_rows(dict(run, quality_floor=None))}
    assert rows["jax@newest"]["FD seed std (study)"] == f"{m['fd_std']['jax@newest']:.0f} (n=4)"


def test_report_quality_section_says_one_seed_cannot_separate_backends(tmp_path, monkeypatch):
    study = _study_inputs(tmp_path / "study")
    monkeypatch.setattr(seed_spread, "load", lambda path=None: study)
    run = _results(7, {"pytorch": 380.0, "jax": 450.0})
    run["quality_floor"] = _quality(4.0)
    run["quality_info"] = {"samples": 1000, "classifier_accuracy": 0.97, "reference": "ref"}
    text = markdown.report_markdown(run, tables.summary_rows(run), [], tmp_path,
                                    {"quality": tables.quality_rows(run)})
    assert "One seed cannot separate backends" in text and "FD seed std (study)" in text
    assert "the evaluator's own error" in text
    run["config"]["iters"] = 40
    text = markdown.report_markdown(run, tables.summary_rows(run), [], tmp_path,
                                    {"quality": tables.quality_rows(run)})
    assert "No committed seed study matches this setting" in text and "--seeds" in text


def test_a_seeds_report_tests_whether_backends_differ(tmp_path, monkeypatch):
    monkeypatch.setattr(seed_spread, "load", lambda path=None: None)
    run = _results(0, {"pytorch": 300.0, "jax": 700.0}, by_seed={
        str(s): _backends({"pytorch": 300.0 + s, "jax": 700.0 + s}) for s in range(1, 8)})
    run["config"]["seeds"] = list(range(8))
    text = markdown.report_markdown(run, tables.summary_rows(run), [], tmp_path,
                                    {"seeds": seeds.seed_rows(run)})
    assert "Does any backend reach a different FD?" in text and "Yes:" in text and "pytorch vs jax" in text
    three = _results(0, {"pytorch": 300.0, "jax": 700.0}, by_seed={
        str(s): _backends({"pytorch": 300.0 + s, "jax": 700.0 + s}) for s in (1, 2)})
    three["config"]["seeds"] = [0, 1, 2]
    assert "too few for any pair" in seeds.seed_test(three)["verdict"]


def test_compare_judges_fd_only_against_the_measured_seed_spread(tmp_path, monkeypatch):
    study = _study_inputs(tmp_path)
    monkeypatch.setattr(seed_spread, "load", lambda path=None: study)
    a = _results(0, {"pytorch": 400.0, "jax": 400.0})
    b = _results(1, {"pytorch": 420.0, "jax": 1400.0})
    text = compare.compare_runs(a, b)
    lines = {line.split()[0]: line for line in text.splitlines() if line.startswith(("pytorch", "jax"))}
    assert lines["pytorch"].endswith("within noise") and lines["jax"].endswith("beyond noise")
    assert "FD change: 'beyond noise' only when" in text
    a["config"]["iters"] = b["config"]["iters"] = 40
    text = compare.compare_runs(a, b)
    assert "not judged" in text and "no committed seed study matches" in text


def test_a_study_setting_with_one_seed_so_far_is_named_without_a_spread(tmp_path, monkeypatch):
    """The study writes its analysis after each seed, so a setting can match with one seed per
    backend and no std; the report, its quality figure and --compare then say so, not fail."""
    study = _study_inputs(tmp_path / "study", seeds=1)
    assert study["settings"]["mnist32-500"]["summary"]["pytorch"]["fd"]["std"] is None
    monkeypatch.setattr(seed_spread, "load", lambda path=None: study)
    run = _results(7, {"pytorch": 380.0, "jax": 450.0})
    run["quality_floor"] = _quality(4.0)
    run["quality_info"] = {"samples": 1000, "classifier_accuracy": 0.97, "reference": "ref"}
    quality = tables.quality_rows(run)
    assert quality[0]["FD seed std (study)"] == "no spread yet (n=1)"
    text = markdown.report_markdown(run, tables.summary_rows(run), [], tmp_path, {"quality": quality})
    assert "one seed per backend so far: no seed spread is measured yet" in text
    markdown.write_report(tmp_path, run)  # the quality figure draws no study error bars
    assert (tmp_path / "quality.png").exists()
    text = compare.compare_runs(run, _results(8, {"pytorch": 300.0, "jax": 900.0}))
    assert "not judged" in text and "one seed per backend so far" in text


@pytest.mark.parametrize("argv", [["--seeds", "0"], ["--adopt", "/nonexistent/run"]])
def test_bad_usage_is_one_line_and_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        seed_study.parse(argv)
    assert e.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_every_page_quotes_the_committed_study_as_it_stands():
    """README, docs/quality.md and the default table quote the study between markers; a page
    that drifted from study.json (or lost its block) fails here: run `python -m
    benchmarks.seed_study --analyse` to rewrite them."""
    study = seed_spread.load()
    assert study and study["settings"], "benchmarks/results/seed-study/study.json is missing"
    for rel in seed_study.QUOTED_IN:
        text = (seed_study.ROOT / rel).read_text()
        assert seed_study.quote(study) in text, f"{rel} does not quote the committed study"


def test_quotes_are_rewritten_between_the_markers_only(tmp_path):
    study = _study_inputs(tmp_path / "inputs")
    page = tmp_path / "README.md"
    page.write_text(f"before\n{seed_study.START}\nstale\n{seed_study.END}\nafter\n")
    assert seed_study.rewrite_quotes(study, tmp_path) == [page]
    text = page.read_text()
    assert text.startswith("before\n") and text.endswith("\nafter\n") and "stale" not in text
    assert "pytorch" in text and "Does any framework reach a different quality?" in text
    assert seed_study.rewrite_quotes(study, tmp_path) == []  # unchanged: nothing written


def test_the_terminal_table_of_a_seeds_run_gives_the_spread_and_the_verdict(monkeypatch):
    monkeypatch.setattr(seed_spread, "load", lambda path=None: None)
    run = _results(0, {"pytorch": 300.0, "jax": 310.0}, by_seed={
        str(s): _backends({"pytorch": 300.0 + 40 * s, "jax": 310.0 - 30 * s}) for s in (1, 2, 3)})
    run["config"]["seeds"] = [0, 1, 2, 3]
    text = tables.stdout_table(run)
    assert "across seeds 0, 1, 2, 3:" in text and "FD 95% interval" in text
    assert "do backends differ in FD? no difference found: at 4 seeds per backend" in text
    assert "Mann-Whitney U p = " in text  # two backends: the exact two-group test
