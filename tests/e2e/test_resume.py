"""Checkpoint and resume through the real CLI: every backend killed mid-run (SIGKILL, nothing
cleaned up) and resumed gives the uninterrupted run's losses and final weights, bit for bit.

Measured on this CPU (2 cores, torch 2.13, TF 2.21, MXNet 1.9.1, Chainer 7.8.1): every backend's
resumed losses and weights equal the uninterrupted run's exactly, so the assertion is equality.
That holds because a resumed process computes the same float32 operations in the same order:
the same batches and z (functions of seed and iteration), the same thread settings (stored in
the run's configuration), and every piece of optimizer state restored (Adam's moments and its
step count, which sets the bias correction; BN running statistics, which the losses do not show
but the final weights do).
"""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import backends
from common.harness.worker import FAULT_ENV
from tests.support.backends import require_backend
from tests.support.processes import REPO, offline, run_cli

ITERS, EVERY, KILL_AT = 12, 5, 11  # killed after the iteration-10 checkpoint was written
# One backend's newest checkpoint is also torn before resuming: it must fall back to iter-5.
TORN = "pytorch"
# One thread per framework: 12 short child processes cost 55 s of CPU (76 s wall, load 8 on
# 2 cores) instead of 123 s with two threads each, where OpenMP's spinning threads compete.
ARGS = ["--dataset", "synthetic", "--iters", str(ITERS), "--batch-size", "16",
        "--checkpoint-every", str(EVERY), "--threads", "1", "--quiet"]


def _runnable() -> list[str]:
    return [n for n in backends.NAMES if not backends.unavailable_reason(n)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(uninterrupted run folder, killed-then-resumed run folder, the resume's process)."""
    names = _runnable()
    if not names:
        pytest.skip("no backend can run here")
    tmp = tmp_path_factory.mktemp("resume")
    env = offline(tmp)
    full, cut = tmp / "full", tmp / "cut"
    proc = run_cli("--backend", ",".join(names), *ARGS, "--out", str(full), env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    kill = ",".join(f"{n}:kill@{KILL_AT}" for n in names)
    proc = run_cli("--backend", ",".join(names), *ARGS, "--out", str(cut),
                   env=dict(env, **{FAULT_ENV: kill}), timeout=900)
    assert proc.returncode == 1, proc.stderr[-3000:]
    torn = cut / "backends" / TORN / "checkpoints" / f"iter-{10:06d}"
    if torn.exists():  # as a kill during the write would leave it, had the rename not been last
        victim = next(p for p in sorted(torn.iterdir()) if p.name not in ("manifest.json", "weights.npz"))
        victim.write_bytes(victim.read_bytes()[:-100])
    resumed = run_cli("--resume", str(cut), "--quiet", env=env, timeout=900)
    return full, cut, resumed


def _losses(run_dir, name) -> list[tuple[str, str, str]]:
    with open(run_dir / "backends" / name / "losses.csv") as f:
        return [(r["iteration"], r["loss_d"], r["loss_g"]) for r in csv.DictReader(f)]  # repr: exact


@pytest.mark.slow
@pytest.mark.parametrize("name", backends.NAMES)
def test_a_killed_and_resumed_run_equals_the_uninterrupted_one(runs, name):
    require_backend(name)
    full, cut, resumed = runs
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    before = json.loads((full / "results.json").read_text())["backends"][name]
    after = json.loads((cut / "results.json").read_text())
    result = after["backends"][name]
    assert result["status"] == "ok", result
    assert result["resumed_from"] == (EVERY if name == TORN else 2 * EVERY)
    assert result["iterations_done"] == before["iterations_done"] == ITERS
    assert after["resumed"][0]["command"].startswith("python run_all.py --resume")
    assert _losses(cut, name) == _losses(full, name)  # every iteration once, in order, equal
    got, want = (np.load(d / "backends" / name / "weights.npz") for d in (cut, full))
    for key in want.files:  # BN running statistics included: the losses do not show them
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    assert "injected fault" in (cut / "backends" / name / "stderr.before-resume.log").read_text()
    checkpoints = sorted(p.name for p in (cut / "backends" / name / "checkpoints").iterdir())
    assert checkpoints == ["iter-000005", "iter-000010"]


@pytest.mark.slow
def test_the_torn_checkpoint_was_skipped_and_said_so(runs):
    require_backend(TORN)
    _, _, resumed = runs
    assert f"checkpoint iter-{2 * EVERY:06d} skipped" in resumed.stderr
    assert f"{TORN}: resuming from iteration {EVERY}" in resumed.stderr


@pytest.mark.slow
def test_resuming_a_finished_run_keeps_it_as_it_is(runs, tmp_path):
    full, _, _ = runs
    copy = tmp_path / "done"
    shutil.copytree(full, copy)
    before = {p: p.read_bytes() for p in (copy / "backends").rglob("*") if p.is_file()}
    proc = run_cli("--resume", str(copy), "--quiet", env=offline(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {p: p.read_bytes() for p in (copy / "backends").rglob("*") if p.is_file()} == before


def _refused(capsys, *argv) -> str:
    """run_all.py's main in this process (a refusal trains nothing): exit 2, one line."""
    import run_all
    assert run_all.main(list(argv)) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    return line


@pytest.mark.slow
@pytest.mark.parametrize("args,needle", [
    (["--batch-size", "32"], "--batch-size 32 differs from the run's stored 16"),
    (["--batch", "32"], "--batch-size 32 differs"),  # argparse's abbreviations count too
    (["--iters", "20"], "--iters 20 differs"),
    (["--no-shared-init"], "--shared-init False differs"),
    (["--out", "elsewhere"], "--out cannot be combined with --resume"),
], ids=["batch-size", "abbreviated", "iters", "shared-init", "out"])
def test_a_changed_configuration_is_refused_naming_it(runs, capsys, args, needle):
    full, _, _ = runs
    assert needle in _refused(capsys, "--resume", str(full), *args)


def test_a_run_folder_from_a_newer_schema_is_refused(tmp_path, capsys):
    run_dir = tmp_path / "future"
    run_dir.mkdir()
    (run_dir / "results.json").write_text(json.dumps({"schema_version": 99, "config": {}, "backends": {}}))
    line = _refused(capsys, "--resume", str(run_dir))
    assert "schema version 99" in line and "upgrade dcgan-bench" in line


def test_resume_of_a_folder_without_results_is_refused(tmp_path, capsys):
    assert "no results.json" in _refused(capsys, "--resume", str(tmp_path))


def _interrupted_copy(tmp_path, **config) -> Path:
    """A committed run's results.json with pytorch interrupted (the rest finished), its config
    changed by `config`: what --resume reads, without training."""
    src = REPO / "benchmarks" / "results" / "seed-study" / "mnist32-500" / "seed-0"
    results = json.loads((src / "results.json").read_text())
    results["config"].update(config)
    results["backends"]["pytorch"]["status"] = "interrupted"
    run_dir = tmp_path / "cut"
    run_dir.mkdir()
    (run_dir / "results.json").write_text(json.dumps(results))
    return run_dir


@pytest.mark.parametrize("stored,given,expected", [
    (None, ["--checkpoint-every", "50"], 50),   # what the interrupt message suggests adding
    (100, ["--checkpoint-every", "50"], 50),
    (100, [], 100),                             # not given: the stored value goes on
    (None, [], None)])
def test_resume_takes_a_new_checkpoint_every(tmp_path, stored, given, expected):
    import run_all
    from common.harness import resume
    run_dir = _interrupted_copy(tmp_path, **({"checkpoint_every": stored} if stored else {}))
    args = resume.resume_args(run_all.parse_args(["--resume", str(run_dir), *given]))
    assert args.checkpoint_every == expected and args.iters == 500 and args.batch_size == 64


def test_resume_refuses_checkpoints_for_a_data_parallel_run(tmp_path, capsys):
    run_dir = _interrupted_copy(tmp_path, devices=2)
    assert "--checkpoint-every with a data-parallel run" in _refused(capsys, "--resume", str(run_dir),
                                                                    "--checkpoint-every", "50")


def test_a_run_killed_whole_during_its_first_backend_can_be_resumed(tmp_path, monkeypatch):
    """results.json is written before the first child starts, so a run whose parent dies with
    its first backend (a machine stopped) is resumable from that backend's checkpoints."""
    import run_all
    from common.harness import orchestrate, resume
    out = tmp_path / "run"

    def killed(name, child_config, seed_dir, *rest):  # the whole process group dies here
        raise SystemExit(137)

    monkeypatch.setattr(orchestrate, "run_child", killed)
    with pytest.raises(SystemExit):
        orchestrate.run(run_all.parse_args(["--backend", "pytorch,jax", "--dataset", "synthetic",
                                            "--iters", "20", "--checkpoint-every", "10",
                                            "--out", str(out), "--quiet"]))
    stored = json.loads((out / "results.json").read_text())
    assert stored["backends"] == {} and "finished" not in stored
    args = resume.resume_args(run_all.parse_args(["--resume", str(out)]))
    assert args.backends == ["pytorch", "jax"] and args.iters == 20 and args.checkpoint_every == 10
