"""run_all.py on a folder of images made here: every backend trains the dcgan64 preset end to end
on the same decoded pixels, and the report shows FID or says why it is missing."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

import backends
from tests.support.backends import require_backend
from tests.support.processes import offline, one_line_error, run_cli

N_IMAGES = 12  # FID then uses N = 6 samples per backend and 2 x 6 real images: cheap on 2 cores


def make_folder(root):
    rng = np.random.default_rng(0)
    for i in range(N_IMAGES):
        sub = root / ("a" if i % 2 else "b/c")
        sub.mkdir(parents=True, exist_ok=True)
        h, w = 48 + 4 * i, 80 - 2 * i
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
            sub / f"{i}.{'png' if i % 3 else 'jpg'}")
    (root / "a" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    for name in backends.NAMES:
        require_backend(name)
    tmp = tmp_path_factory.mktemp("folder-run")
    make_folder(tmp / "photos")
    out = tmp / "run"
    # No --preset: an image folder selects dcgan64 by itself.
    proc = run_cli("--backend", "all", "--dataset", str(tmp / "photos"), "--iters", "3",
                   "--batch-size", "8", "--out", str(out), "--quiet", env=offline(tmp), timeout=900)
    return proc, out, json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else None


@pytest.mark.slow
def test_every_backend_trains_dcgan64_on_the_folder(folder_run):
    proc, out, results = folder_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert results["config"]["preset"] == "dcgan64"
    ds = results["dataset"]
    assert ds["name"] == "image-folder" and ds["n"] == N_IMAGES and ds["channels"] == 3
    assert [s["file"] for s in ds["skipped"]] == ["a/broken.jpg"]
    assert proc.stderr.count("could not be read") == 1  # the parent warns once, children not again
    for name in backends.NAMES:
        r = results["backends"][name]
        assert r["status"] == "ok", (name, r.get("reason"))
        assert np.load(out / "backends" / name / "samples.npy").shape == (64, 3, 64, 64)  # full grid
        child = json.loads((out / "backends" / name / "config.json").read_text())
        assert child["dataset"]["decoded"] == ds["source"]["decoded"]  # the parent's pixels


@pytest.mark.slow
def test_first_losses_agree_across_backends(folder_run):
    _, out, results = folder_run
    with open(out / "losses.csv") as f:
        first = {r["backend"]: (float(r["loss_d"]), float(r["loss_g"])) for r in csv.DictReader(f)
                 if r["iteration"] == "0"}
    assert set(first) == set(backends.NAMES)
    # Same shared weights, data and noise. The README's end-to-end bound for the first
    # iterations (tests/support/tolerances.py): 1e-3, or 2.2e-3 for Adam's folded eps convention.
    for name, (loss_d, loss_g) in first.items():
        assert abs(loss_d - first["pytorch"][0]) <= 2.2e-3, name
        assert abs(loss_g - first["pytorch"][1]) <= 2.2e-3, name


@pytest.mark.slow
def test_report_shows_fid_or_says_why_not(folder_run):
    _, out, results = folder_run
    report = (out / "report.md").read_text()
    if results.get("quality_unavailable"):
        assert results["quality_unavailable"].startswith("FID unavailable: ")
        assert results["quality_unavailable"] in report
        assert all("quality" not in r for r in results["backends"].values())
        return
    assert results["quality_info"]["kind"] == "fid" and "## Sample quality (FID)" in report
    n = results["config"]["quality"]["samples"]
    assert n == N_IMAGES // 2 and results["quality_floor"]["n"] == n
    for name in backends.NAMES:
        q = results["backends"][name]["quality"]
        assert np.load(out / "backends" / name / "quality_samples.npy").shape == (n, 3, 64, 64)
        assert q["n"] == n and q["fid"] > results["quality_floor"]["fid"]  # 3 iterations: noise
    assert "real images (floor)" in report


@pytest.mark.parametrize("make,needle", [
    (lambda p: p.mkdir(), "no .png or .jpg images"),
    (lambda p: None, "no such folder"),
], ids=["empty-folder", "missing-folder"])
def test_bad_folder_is_one_line_exit_2_and_creates_nothing(tmp_path, make, needle):
    make(tmp_path / "photos")
    proc = run_cli("--dataset", str(tmp_path / "photos"), "--out", str(tmp_path / "run"), env=offline(tmp_path))
    assert needle in one_line_error(proc)
    assert not (tmp_path / "run").exists()


def test_cifar10_without_a_mirror_is_one_line_exit_2(tmp_path):
    env = dict(offline(tmp_path), DCGAN_BENCH_CIFAR10_MIRRORS=offline(tmp_path)["DCGAN_BENCH_MNIST_MIRRORS"])
    proc = run_cli("--dataset", "cifar10", "--out", str(tmp_path / "run"), env=env)
    assert "no offline fallback" in one_line_error(proc)
    assert not (tmp_path / "run").exists()
