"""--target-fd: the stop at the target, its record, the seconds it counts (evaluation left out,
on a fake clock through the backends' own timed loop), the results reader, the report's rows,
and bad input refused before anything trains."""
from __future__ import annotations

import copy
import json
import types
from pathlib import Path

import numpy as np
import pytest

from backends.base import BackendBase
from common import options
from common.harness import quality, steplog
from common.harness.steplog import StepLog, TargetReached
from common.timing import MAX_WARMUP_STEPS
from common.results import markdown, schema, tables
from common.spec import model_spec
from tests.support.processes import one_line_error, run_cli

V1 = Path(__file__).resolve().parents[1] / "fixtures" / "results-v1.json"
STEP, PROBE = 1.0, 100.0  # fake seconds: one training step, one FD check


class FakeClock:
    """perf_counter and monotonic of the fake time: only what the test advances."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fake_training(tmp_path, monkeypatch, fds: list[float], target: float | None, stop: int,
                  every: int = 5):
    """`stop` iterations through BackendBase.fetching_loop (the timed loop of the plain-loop
    backends) into a StepLog whose probe returns the FDs in turn. A step takes STEP fake seconds,
    a check PROBE: returns (log, curve, what stopped training or None)."""
    from common import timing
    clock = FakeClock()
    fake_time = types.SimpleNamespace(perf_counter=clock, monotonic=clock)
    monkeypatch.setattr(timing, "time", fake_time)
    monkeypatch.setattr(steplog, "time", fake_time)
    curve, fd_iter = [], iter(fds)

    def probe(done, train_seconds):  # as the worker's: the curve point it appended
        clock.now += PROBE
        curve.append({"iteration": done, "train_seconds": train_seconds, "fd": next(fd_iter)})
        return curve[-1]

    def step(real, z):
        clock.now += STEP
        return (0.5, 1.0)

    log = StepLog("fake", tmp_path / "losses.csv", 0, stop, 8, progress=False, probe=probe,
                  probe_every=every, target_fd=target)
    batches = ((None, None) for _ in range(stop))
    stopped = None
    try:
        BackendBase.fetching_loop(types.SimpleNamespace(fetch_every=1), batches, 0, log, step,
                                  lambda pending: np.asarray(pending))
    except TargetReached as exc:
        stopped = exc
    log.close()
    return log, curve, stopped


def test_training_stops_at_the_first_check_at_or_under_the_target(tmp_path, monkeypatch):
    log, curve, stopped = fake_training(tmp_path, monkeypatch, [900, 450, 300, 100], 500, 40)
    assert stopped is not None and stopped.point["iteration"] == 10
    assert log.iterations_done == 10  # no step after the check that reached it
    record = quality.time_to_target(curve, 500)
    assert record == {"target_fd": 500, "reached": True, "iterations": 10, "seconds": 10 * STEP}


def test_seconds_leave_out_the_checks(tmp_path, monkeypatch):
    # Two checks of PROBE fake seconds each happen before the target is reached: had the
    # evaluation leaked into step time, the seconds would be 15 + 200.
    log, curve, _ = fake_training(tmp_path, monkeypatch, [900, 800, 400], 500, 40)
    assert quality.time_to_target(curve, 500)["seconds"] == 15 * STEP
    assert list(log.step_times()) == [STEP] * 15  # read back from the CSV, exactly
    assert log.train_seconds == 15 * STEP
    assert log.probe_seconds == 3 * PROBE
    assert log.overhead_total < PROBE  # nor counted as the harness's overhead


def test_the_step_log_holds_no_per_step_list(tmp_path, monkeypatch):
    """Memory stays flat however long a run is (the soak's check): of its per-step records the
    log holds the warm-up steps' only, with running totals; every step time is read back from
    the CSV for the summary."""
    log, _, _ = fake_training(tmp_path, monkeypatch, [900] * 8, 1.0, 40)
    assert len(log.clock_head) == len(log.overhead_head) == MAX_WARMUP_STEPS
    s = log.summary()
    assert s["steps"] == 40 and s["train_seconds"] == 40 * STEP and s["warmup_steps"] == 4
    assert s["timed_window_monotonic"][0] == log.clock_head[3] and 0 <= s["harness_overhead_fraction"] < 1


def test_unreached_target_runs_every_iteration_and_checks_the_last(tmp_path, monkeypatch):
    # 12 iterations, a check every 5: at 5, 10 and, with a target, at the last (12).
    log, curve, stopped = fake_training(tmp_path, monkeypatch, [900, 800, 700], 1.0, 12)
    assert stopped is None and log.iterations_done == 12
    assert [p["iteration"] for p in curve] == [5, 10, 12]
    assert quality.time_to_target(curve, 1.0) == {"target_fd": 1.0, "reached": False,
                                                  "iterations": None, "seconds": None}


def test_without_a_target_nothing_stops_and_the_last_is_not_checked(tmp_path, monkeypatch):
    log, curve, stopped = fake_training(tmp_path, monkeypatch, [1, 1], None, 12)
    assert stopped is None and log.iterations_done == 12
    assert [p["iteration"] for p in curve] == [5, 10]


def test_the_check_at_the_initial_weights_never_counts():
    curve = [{"iteration": 0, "train_seconds": 0.0, "fd": 10.0},
             {"iteration": 50, "train_seconds": 7.0, "fd": 20.0}]
    assert not quality.time_to_target(curve, 15.0)["reached"]
    assert quality.time_to_target(curve, 20.0)["iterations"] == 50


def test_plain_runs_store_no_target_and_a_target_is_stored_with_the_checks():
    spec = model_spec("mnist32")
    plain = quality.quality_config("mnist-5k", spec, 500, None)
    assert plain == {"samples": plain["samples"], "every": 50}
    assert type(plain["every"]) is int
    config = {"quality": quality.quality_config("mnist-5k", spec, 500, None, target_fd=400.0)}
    assert config["quality"]["target_fd"] == 400.0
    assert options.stored_value("target_fd", config) == 400.0  # what --resume compares
    assert options.stored_value("target_fd", {"quality": plain}) is None


# ----- the results reader -----
def record(reached: bool, iterations=None, seconds=None, target=500.0) -> dict:
    return {"target_fd": target, "reached": reached, "iterations": iterations, "seconds": seconds}


def test_reader_accepts_results_without_the_field_and_reads_it_where_present(tmp_path):
    old = schema.load_results(V1)  # written before time_to_target existed
    assert all(schema.time_to_target(r) is None for r in old["backends"].values())
    new = copy.deepcopy(old)
    name = next(iter(new["backends"]))
    new["backends"][name]["time_to_target"] = record(True, 450, 31.5)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(new))
    assert schema.time_to_target(schema.load_results(path)["backends"][name])["iterations"] == 450


@pytest.mark.parametrize("bad", [record(True), record(False, 450, 3.0), "fast",
                                 {"target_fd": 500, "reached": "yes", "iterations": 1, "seconds": 1}])
def test_reader_refuses_a_malformed_time_to_target_in_one_line(tmp_path, bad):
    results = schema.load_results(V1)
    name = next(iter(results["backends"]))
    results.setdefault("by_seed", {})["1"] = {name: {"backend": name, "status": "ok",
                                                     "time_to_target": bad}}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    with pytest.raises(ValueError, match="time_to_target"):
        schema.load_results(path)


# ----- what the report and the terminal show -----
def run_results(by_backend: dict[str, list[dict | None]], iters: int = 1000) -> dict:
    """results.json of a run with --target-fd 500: per backend, one record per seed (None: the
    backend failed at that seed)."""
    seeds = len(next(iter(by_backend.values())))
    runs = [{} for _ in range(seeds)]
    for name, recs in by_backend.items():
        for k, rec in enumerate(recs):
            runs[k][name] = ({"backend": name, "status": "failed"} if rec is None else
                             {"backend": name, "status": "ok", "time_to_target": rec,
                              "quality_curve": [{"iteration": iters, "train_seconds": 1.0,
                                                 "fd": 612.4}]})
    results = {"config": {"iters": iters, "quality": {"samples": 1000, "every": 50,
                                                      "target_fd": 500.0}},
               "backends": runs[0]}
    if seeds > 1:
        results["by_seed"] = {str(k): run for k, run in enumerate(runs[1:], 1)}
        results["config"]["seeds"] = list(range(seeds))
    return results


def test_one_seed_shows_the_run_and_says_it_is_no_ranking():
    results = run_results({"pytorch": [record(True, 450, 120.25)], "jax": [record(False)]})
    assert tables.time_to_target_rows(results) == [
        {"backend": "pytorch", "reached": "yes", "iterations": "450", "train s": "120.2"},
        {"backend": "jax", "reached": "no, FD 612 at the end", "iterations": "not reached",
         "train s": "not reached"}]
    text = "\n".join(markdown.time_to_target_lines(results))
    assert "## Time to target" in text and "one run is no ranking" in text
    assert "at most 500" in text and "every 50 iterations" in text
    assert "time to FD <= 500 (checked every 50 iterations" in "\n".join(
        tables.time_to_target_stdout(results))


def test_seeds_give_the_median_and_range_with_missed_targets_ranked_slowest():
    results = run_results({
        "pytorch": [record(True, 400, 10.0), record(True, 500, 30.0), record(True, 450, 20.0)],
        "jax": [record(True, 300, 5.0), record(False), record(True, 350, 6.0)],
        "chainer": [record(False), record(False), record(True, 900, 50.0)],
        "mxnet": [record(True, 200, 2.0), None, record(True, 250, 3.0)]})
    rows = {r["backend"]: r for r in tables.time_to_target_rows(results)}
    assert rows["pytorch"] == {"backend": "pytorch", "reached": "3/3 seeds",
                               "iterations": "450 (400-500)", "train s": "20.0 (10.0-30.0)",
                               "vs fastest": "8.00x, ranges apart"}
    # mxnet's median 2.5 s is the fastest; jax's 6.0 (5.0-inf) starts above mxnet's 3.0
    assert rows["mxnet"]["vs fastest"] == "fastest" and rows["jax"]["vs fastest"] == "2.40x, ranges apart"
    assert rows["chainer"]["vs fastest"] == "-"  # its median missed the target: no ratio
    # One of three missed: it is the slowest, so the median is the slower of the other two.
    assert rows["jax"]["iterations"] == "350 (300-not reached)"
    assert rows["jax"]["reached"] == "2/3 seeds"
    assert rows["chainer"]["iterations"] == "not reached (900-not reached)"
    assert rows["mxnet"]["reached"] == "2/2 seeds (1 failed)"
    assert rows["mxnet"]["iterations"] == "225 (200-250)"
    text = "\n".join(markdown.time_to_target_lines(results))
    assert "Median (min-max) over the seeds that finished" in text
    assert "median (min-max) over 3 seeds" in "\n".join(tables.time_to_target_stdout(results))


def test_close_backends_are_said_not_separated_by_the_seeds():
    results = run_results({"pytorch": [record(True, 400, 10.0), record(True, 450, 14.0), record(True, 450, 12.0)],
                           "jax": [record(True, 400, 11.0), record(True, 450, 13.0), record(True, 500, 15.0)]})
    rows = {r["backend"]: r for r in tables.time_to_target_rows(results)}
    assert rows["pytorch"]["vs fastest"] == "fastest"
    assert rows["jax"]["vs fastest"] == "1.08x, ranges overlap: not separated"


def test_runs_without_a_target_show_no_time_to_target_section():
    results = schema.load_results(V1)
    assert tables.time_to_target_rows(results) == []
    assert markdown.time_to_target_lines(results) == [] and tables.time_to_target_stdout(results) == []


# ----- bad input: one line, exit 2, nothing created, nothing trained -----
@pytest.mark.parametrize("args,needle", [
    (["--target-fd", "0"], "--target-fd must be positive"),
    (["--target-fd", "-5"], "--target-fd must be positive"),
    (["--target-fd", "nan"], "finite"),
    (["--target-fd", "400", "--quality-every", "0"], "--quality-every 0"),
    (["--target-fd", "400", "--dataset", "cifar10"], "no FD evaluator"),
    (["--target-fd", "400", "--dataset", "synthetic"], "no FD evaluator"),
    (["--target-fd", "400", "--devices", "2"], "--devices"),
], ids=["zero", "negative", "nan", "quality-every-0", "rgb", "synthetic", "data-parallel"])
def test_bad_target_is_one_line_exit_2_before_anything_trains(tmp_path, offline_env, args, needle):
    proc = run_cli("--backend", "pytorch", *args, "--out", str(tmp_path / "run"), env=offline_env)
    assert needle in one_line_error(proc)
    assert not (tmp_path / "run").exists()


# ----- python -m benchmarks.time_to_target -----
def test_the_table_command_tabulates_a_run_per_backend_and_seed(tmp_path, capsys):
    from benchmarks import time_to_target
    results = run_results({
        "pytorch": [record(True, 400, 10.0), record(True, 500, 30.0), record(True, 450, 20.0)],
        "jax": [record(True, 300, 5.0), record(False), None]})
    v1 = schema.load_results(V1)
    results.update(schema_version=1, command="python run_all.py ...", dataset={"name": "mnist-5k"},
                   provenance=v1["provenance"])
    results["config"].update(dataset="mnist", preset="mnist32", batch_size=64, seed=0, threads=2)
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps(results))
    out = tmp_path / "table"
    assert time_to_target.main(["--from-run", str(run), "--out", str(out)]) == 0
    doc = json.loads((out / "time_to_target.json").read_text())
    assert [(r["backend"], r["seed"], r["reached"], r["iterations"]) for r in doc["records"]] == [
        ("pytorch", 0, True, 400), ("jax", 0, True, 300), ("pytorch", 1, True, 500),
        ("jax", 1, False, None), ("pytorch", 2, True, 450)]  # jax's failed seed 2: no record
    assert doc["setting"]["target_fd"] == 500.0 and doc["setting"]["seeds"] == [0, 1, 2]
    assert doc["versions"] == v1["provenance"]["packages"]
    text = (out / "time_to_target.md").read_text()
    assert "| pytorch   | 3/3 seeds" in text and "450 (400-500)" in text
    assert "not reached" in text and text in capsys.readouterr().out
    assert "busy" not in text  # no backend recorded its load
    assert time_to_target.main(["--from-run", str(run), "--out", str(out)]) == 2  # never overwrites


@pytest.mark.parametrize("args,needle", [
    (["--target-fd", "500", "--seeds", "0,1"], "at least 3"),
    (["--target-fd", "500", "--seeds", "0,0,1"], "at least 3"),
    ([], "--target-fd F is needed"),
    (["--target-fd", "-1"], "--target-fd must be positive"),
    (["--target-fd", "500", "--quality-every", "0"], "--quality-every 0"),
], ids=["two-seeds", "repeated-seed", "no-target", "negative-target", "no-checks"])
def test_the_table_command_refuses_bad_input_in_one_line(args, needle):
    import subprocess
    import sys

    from tests.support.processes import REPO
    proc = subprocess.run([sys.executable, "-m", "benchmarks.time_to_target", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)
    assert needle in one_line_error(proc)


def test_a_label_of_an_environment_that_is_not_built_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    from benchmarks import time_to_target
    monkeypatch.setenv("DCGAN_BENCH_ENVS_DIR", str(tmp_path))  # no environment built here
    with pytest.raises(SystemExit) as e:
        time_to_target.parse_args(["--backend", "jax,jax@nosuch", "--target-fd", "500"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "jax@nosuch: unknown environment" in err[0]

