"""Tests for common.results (figures, tables, markdown, compare): sample grids, and the report
written from a hand-built run folder."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.results import compare, figures, markdown, seeds, tables
from common.results.schema import LOSS_COLUMNS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FAIL_REASON = "the backend process killed by signal 9"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


# ----- tile -----
@pytest.mark.parametrize("channels", [1, 3])
def test_tile_shape(channels):
    samples = np.zeros((10, channels, 4, 5), np.uint8)
    grid = figures.tile(samples, columns=8, gap=2)
    # 10 tiles in 8 columns -> 2 rows; each tile plus its gap, plus one gap at the far edge.
    expected = (2 * (4 + 2) + 2, 8 * (5 + 2) + 2)
    assert grid.shape == (expected if channels == 1 else expected + (3,))
    assert grid.dtype == np.uint8


def test_tile_places_each_sample_and_leaves_gaps_white():
    n, c, h, w, gap, cols = 7, 3, 4, 5, 2, 3
    samples = np.zeros((n, c, h, w), np.uint8)
    for i in range(n):
        samples[i, 0] = i                  # red: which tile
        samples[i, 1] = 100 + np.arange(h)[:, None]  # green: row inside the tile
        samples[i, 2] = 200 + np.arange(w)[None, :]  # blue: column inside the tile (not transposed)
    grid = figures.tile(samples, columns=cols, gap=gap)
    covered = np.zeros(grid.shape[:2], bool)
    for i in range(n):
        r, col = divmod(i, cols)
        y, x = gap + r * (h + gap), gap + col * (w + gap)
        assert np.array_equal(grid[y:y + h, x:x + w], samples[i].transpose(1, 2, 0)), i
        covered[y:y + h, x:x + w] = True
    assert np.all(grid[~covered] == 255)  # gaps and the two empty slots of the last row


def test_tile_grey_keeps_pixel_values_in_place():
    samples = np.arange(2 * 1 * 3 * 3, dtype=np.uint8).reshape(2, 1, 3, 3)
    grid = figures.tile(samples, columns=2, gap=1)
    assert grid.shape == (5, 9)
    assert np.array_equal(grid[1:4, 1:4], samples[0, 0])
    assert np.array_equal(grid[1:4, 5:8], samples[1, 0])
    assert np.all(grid[:, 4] == 255) and np.all(grid[0] == 255)


# ----- write_report on a hand-built run folder -----
def _ok_result(name: str, img_s: float) -> dict:
    return {
        "backend": name, "status": "ok", "device": {"device": "cpu", "name": "test cpu"},
        "iterations_done": 20,
        "summary": {"img_per_s_median": img_s, "img_per_s_iqr": [img_s * 0.9, img_s * 1.1],
                    "first_step_seconds": 1.25,
                    "peak_memory": {"bytes": 300 * 2**20, "kind": "rss"}},
        "final_losses": {"iteration": 19, "loss_d": 0.6931, "loss_g": 1.2345},
    }


def _results(backends: dict) -> dict:
    return {
        "schema_version": 1,
        "command": "python run_all.py --dataset synthetic --iters 20",
        "config": {"dataset": "synthetic", "preset": "mnist32", "iters": 20, "batch_size": 64,
                   "seed": 0, "shared_init": True, "device": "cpu"},
        "dataset": {"name": "synthetic-blobs", "n": 512, "warning": "not real data"},
        "provenance": {"cpu": "Test CPU", "cpu_count": 4, "gpus": [], "python": "3.11.7",
                       "packages": {"numpy": "1.26.4"}, "git": {"commit": "abc1234", "dirty": True}},
        "backends": backends,
    }


def _write_backend_files(run_dir: Path, name: str, iters: int = 20, seed: int = 0) -> pd.DataFrame:
    out = run_dir / "backends" / name
    out.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"backend": name, "iteration": np.arange(iters),
                       "loss_d": rng.uniform(0.5, 1.5, iters), "loss_g": rng.uniform(0.5, 3, iters),
                       "step_seconds": rng.uniform(0.01, 0.02, iters)})
    df.to_csv(out / "losses.csv", index=False, columns=list(LOSS_COLUMNS))
    np.save(out / "samples.npy", rng.integers(0, 256, (64, 1, 32, 32), dtype=np.uint8))
    return df


@pytest.fixture
def run_with_failure(tmp_path):
    ok = _write_backend_files(tmp_path, "pytorch")
    (tmp_path / "backends" / "chainer").mkdir()  # started, crashed before writing anything
    results = _results({
        "pytorch": _ok_result("pytorch", 1234.5),
        "chainer": {"backend": "chainer", "status": "failed", "reason": FAIL_REASON},
    })
    written = markdown.write_report(tmp_path, results)
    return tmp_path, results, written, ok


def test_write_report_writes_the_expected_files(run_with_failure):
    run_dir, _, written, _ = run_with_failure
    names = {p.name for p in written}
    assert names == {"losses.csv", "samples_pytorch.png", "loss_curves.png", "throughput.png",
                     "report.md"}
    assert all(p.exists() and p.stat().st_size > 0 for p in written)
    assert not (run_dir / "samples_chainer.png").exists()
    assert not (run_dir / "samples.png").exists()  # side-by-side only with two or more grids
    assert not list(run_dir.glob(".*.tmp"))         # atomic writes left nothing behind


def test_no_figures_writes_the_tables_and_says_how_to_draw_them(tmp_path):
    """--no-figures (benchmark cells): losses.csv and report.md with every table, no PNG, and the
    command that draws the figures later."""
    _write_backend_files(tmp_path, "pytorch")
    results = _results({"pytorch": _ok_result("pytorch", 1234.5)})
    written = {p.name for p in markdown.write_report(tmp_path, results, figures_too=False)}
    assert written == {"losses.csv", "report.md"} and not list(tmp_path.glob("*.png"))
    report = (tmp_path / "report.md").read_text()
    assert "1234.5" in report and "## Figures" not in report
    assert f"python run_all.py --report {tmp_path}" in report


def test_merged_losses_csv(run_with_failure):
    run_dir, _, _, ok = run_with_failure
    merged = pd.read_csv(run_dir / "losses.csv")
    assert list(merged.columns) == ["backend", "iteration", "loss_d", "loss_g", "step_seconds"]
    assert len(merged) == 20 and set(merged["backend"]) == {"pytorch"}
    assert np.allclose(merged["loss_d"], ok["loss_d"]) and np.allclose(merged["loss_g"], ok["loss_g"])


def test_sample_grid_png_is_valid_and_sized(run_with_failure):
    run_dir, _, _, _ = run_with_failure
    # 64 tiles of 32x32, 8 columns, gap 2: 8*34+2 = 274 px a side, scaled x3 by save_grid, with
    # a margin of 10 px and 60 px above for the title.
    assert png_size(run_dir / "samples_pytorch.png") == (274 * 3 + 20, 274 * 3 + 80)


def assert_figure(path: Path) -> None:
    """A real figure: a PNG of a readable size whose pixels are not all one colour."""
    import matplotlib.image
    width, height = png_size(path)
    assert width > 300 and height > 200, path.name
    pixels = matplotlib.image.imread(path)
    assert pixels[..., :3].std() > 0.02, f"{path.name} is blank"


def test_figures_are_valid_pngs(run_with_failure):
    run_dir, _, written, _ = run_with_failure
    for path in written:
        if path.suffix == ".png":
            assert_figure(path)


def test_report_md_mentions_dataset_failure_and_figures(run_with_failure):
    run_dir, results, _, _ = run_with_failure
    md = (run_dir / "report.md").read_text()
    assert "synthetic-blobs" in md and "not real data" in md
    assert results["command"] in md
    assert "chainer" in md and FAIL_REASON in md and "failed" in md
    assert "1234.5" in md           # the ok backend's img/s
    assert "abc1234 (dirty)" in md and "no GPU" in md
    assert "](samples_pytorch.png)" in md and "](loss_curves.png)" in md  # relative links


def test_stdout_table_lists_both_backends_and_the_reason(run_with_failure):
    _, results, _, _ = run_with_failure
    table = tables.stdout_table(results)
    assert "pytorch" in table and "chainer" in table
    assert FAIL_REASON in table
    assert "1234.5" in table and "0.693" in table and "300 (rss)" in table


def test_two_ok_backends_get_side_by_side_samples_and_merged_losses(tmp_path):
    a = _write_backend_files(tmp_path, "pytorch", iters=20, seed=1)
    b = _write_backend_files(tmp_path, "mxnet", iters=15, seed=2)
    results = _results({"pytorch": _ok_result("pytorch", 900.0), "mxnet": _ok_result("mxnet", 700.0)})
    written = {p.name for p in markdown.write_report(tmp_path, results)}
    assert {"samples.png", "samples_pytorch.png", "samples_mxnet.png"} <= written
    png_size(tmp_path / "samples.png")
    merged = pd.read_csv(tmp_path / "losses.csv")
    assert merged.groupby("backend").size().to_dict() == {"pytorch": 20, "mxnet": 15}
    assert np.allclose(merged.loc[merged.backend == "mxnet", "loss_g"], b["loss_g"])
    assert np.allclose(merged.loc[merged.backend == "pytorch", "loss_g"], a["loss_g"])


def test_report_with_no_successful_backend(tmp_path):
    results = _results({"tensorflow": {"backend": "tensorflow", "status": "skipped",
                                       "reason": "tensorflow is not installed"}})
    written = {p.name for p in markdown.write_report(tmp_path, results)}
    assert written == {"losses.csv", "report.md"}  # no figures without data
    assert list(pd.read_csv(tmp_path / "losses.csv").columns) == list(LOSS_COLUMNS)
    assert "tensorflow is not installed" in (tmp_path / "report.md").read_text()


# ----- quality, parity, time to quality, comparing runs -----
def _quality(fd: float, score: float) -> dict:
    q = {"n": 1000, "fd": fd, "fd_std": fd / 20, "kid": fd * 30, "kid_std": fd, "classifier_score": score,
         "classifier_score_std": 0.1, "histogram": [100] * 9 + [100], "modes_covered": 10,
         "kl_to_uniform": 0.01}
    for k in ("precision", "recall", "density", "coverage"):
        q[k], q[k + "_std"] = 0.5, 0.01
    return q


@pytest.fixture
def full_run(tmp_path):
    """Two backends with quality, curves and init outputs, the second off by a known amount."""
    rng = np.random.default_rng(0)
    outs = {"G_eval": rng.standard_normal((4, 1, 32, 32)), "G_train": rng.standard_normal((4, 1, 32, 32)),
            "D_eval": rng.standard_normal(4), "D_train": rng.standard_normal(4)}
    results = _results({})
    for i, name in enumerate(("pytorch", "tensorflow")):
        df = _write_backend_files(tmp_path, name, seed=0)  # identical losses
        if i:
            df.loc[2, "loss_d"] += 4e-4  # one loss off by 4e-4 in the first 5
            df.to_csv(tmp_path / "backends" / name / "losses.csv", index=False)
        np.savez(tmp_path / "backends" / name / "init_outputs.npz",
                 **{k: v + (3e-6 if i else 0) for k, v in outs.items()})
        r = _ok_result(name, 500.0 + 100 * i)
        r["quality"] = _quality(100.0 + 50 * i, 7.0 - i)
        r["quality_curve"] = [{"iteration": k * 10, "train_seconds": k * (1.0 + i), "fd": 1000.0 / k}
                              for k in range(1, 5)]
        results["backends"][name] = r
    results["quality_floor"] = _quality(4.0, 8.8)
    results["quality_info"] = {"samples": 1000, "classifier_accuracy": 0.977, "reference": "ref digits"}
    written = markdown.write_report(tmp_path, results)
    return tmp_path, results, written


@pytest.mark.slow
def test_quality_parity_and_time_to_quality_reach_the_report(full_run):
    run_dir, _, written = full_run
    names = {p.name for p in written}
    assert {"quality.png", "time_to_quality.png", "samples.png"} <= names
    for path in written:
        if path.suffix == ".png":
            assert_figure(path)
    md = (run_dir / "report.md").read_text()
    assert "## Sample quality" in md and "real digits (floor)" in md
    assert "100.00 ± 5.00" in md and "150.00 ± 7.50" in md and "4.00 ± 0.20" in md
    assert "97.7%" in md
    assert "## Parity in this run" in md and "3.0e-06" in md and "4.0e-04" in md
    assert "## Losses" in md and "](quality.png)" in md and "](time_to_quality.png)" in md


@pytest.mark.slow
def test_parity_rows_measure_against_pytorch(full_run):
    run_dir, results, _ = full_run
    losses = tables.read_losses(run_dir, results["backends"])
    (row,) = tables.parity_rows(run_dir, results, losses)
    assert row["backend"] == "tensorflow"
    assert float(row["max Δ G eval"]) == pytest.approx(3e-6, rel=0.05)
    assert float(row["max Δ loss, first 5"]) == pytest.approx(4e-4, rel=0.05)
    results["config"]["shared_init"] = False  # different initial weights: nothing to compare
    assert tables.parity_rows(run_dir, results, losses) == []


@pytest.mark.slow
def test_loss_rows_smooth_over_the_last_tenth(full_run):
    run_dir, results, _ = full_run
    losses = tables.read_losses(run_dir, ["pytorch"])
    (row,) = tables.loss_rows(losses)
    ref = losses.sort_values("iteration")
    assert row["final loss_G"] == round(ref["loss_g"].iloc[-1], 4)
    assert row["loss_D (last 2 mean)"] == round(ref["loss_d"].tail(2).mean(), 4)


@pytest.mark.slow
def test_compare_runs_shows_changes(full_run):
    _, a, _ = full_run
    b = json.loads(json.dumps(a))
    b["backends"]["pytorch"]["summary"]["img_per_s_median"] = 550.0
    b["backends"]["tensorflow"]["quality"]["fd"] = 120.0
    b["config"]["batch_size"] = 16
    del b["backends"]["tensorflow"]["final_losses"]
    text = compare.compare_runs(a, b)
    assert "batch_size: 64 -> 16" in text
    assert "500.0 -> 550.0 (+10.0%)" in text
    assert "150.00 -> 120.00" in text
    tf_line = next(line for line in text.splitlines() if line.startswith("tensorflow"))
    assert "0.693 / " in tf_line and " -> -" in tf_line  # missing on one side: shown, no crash
    assert "within noise" in text  # +10%: under the run-to-run spread


def test_compare_prints_config_differences_as_settings_and_labels_its_load_column():
    run = {"config": {"iters": 500, "quality": {"samples": 1000, "every": 50.0}, "seeds": [0, 1], "timeout": None},
           "backends": {"pytorch": {"status": "ok", "machine_load": {"load1_before": 1.0, "load1_after": 3.5}}}}
    other = json.loads(json.dumps(run))
    other["config"].update(quality={"samples": 1000, "every": 10000.0}, seeds=[0], timeout=60.0)
    other["backends"]["pytorch"]["machine_load"] = {"load1_before": 2.0, "load1_after": 1.0}
    text = compare.compare_runs(run, other)
    assert text.splitlines()[:3] == ["config differs: quality.every: 50 -> 10000", "config differs: seeds: 0,1 -> 0",
                                     "config differs: timeout: none -> 60"]
    assert "{" not in text
    header = next(line for line in text.splitlines() if line.startswith("backend"))
    assert "peak load" in header and "3.5 -> 2.0" in text  # each run's larger load, A -> B
    assert "every cell: run A -> run B; peak load: the larger of" in text


@pytest.mark.slow
def test_seed_rows_give_mean_and_spread_over_seeds(full_run):
    _, results, _ = full_run
    results["config"]["seeds"] = [0, 1, 2]
    other = json.loads(json.dumps(results["backends"]))
    results["by_seed"] = {"1": json.loads(json.dumps(other)), "2": other}
    results["by_seed"]["1"]["pytorch"]["quality"]["fd"] = 110.0
    results["by_seed"]["2"]["pytorch"]["quality"]["fd"] = 120.0
    results["by_seed"]["2"]["tensorflow"]["status"] = "failed"
    rows = {r["backend"]: r for r in seeds.seed_rows(results)}
    assert rows["pytorch"]["seeds ok"] == "3/3" and rows["pytorch"]["FD"] == "110.0 ± 10.0"
    assert rows["tensorflow"]["seeds ok"] == "2/3" and rows["tensorflow"]["FD"] == "150.0 ± 0.0"
    assert "## Across training seeds" in markdown.report_markdown(
        results, tables.summary_rows(results), [], Path("."), {"seeds": seeds.seed_rows(results)})


@pytest.mark.slow
def test_publish_renders_machine_command_throughput_overhead_and_quality(full_run):
    from benchmarks import publish
    _, results, _ = full_run
    results["backends"]["pytorch"]["summary"]["harness_overhead_fraction"] = 0.0049
    text = publish.render(results)
    assert results["command"] in text and "Test CPU" in text and "abc1234 (dirty)" in text
    assert "0.49%" in text and "500.0" in text and "600.0" in text
    assert "real digits (floor)" in text and "150.00 ± 7.50" in text
