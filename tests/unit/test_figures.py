"""Figures that stand alone, checked on the matplotlib objects: every figure's title names the
dataset, preset, batch, iterations and device; axes carry labels with units; bar charts print
their values; FD is on a log axis with the floor inside it; legends sit outside the data."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common.results import figures

RESULTS = {
    "config": {"dataset": "mnist", "preset": "mnist32", "batch_size": 64, "iters": 500, "device": "auto"},
    "dataset": {"name": "mnist-5k"},
    "provenance": {"cpu": "Test CPU", "gpus": []},
    "backends": {"pytorch": {"device": {"device": "cpu"}, "iterations_done": 500,
                             "quality_curve": [{"iteration": 0, "train_seconds": 0.0, "fd": 2800.0},
                                               {"iteration": 50, "train_seconds": 5.0, "fd": 900.0}]}},
    "quality_floor": {"fd": 4.4},
}
CONTEXT = figures.run_context(RESULTS)


def _title(fig) -> str:
    return fig._suptitle.get_text()  # matplotlib keeps the suptitle here (no public getter)


def test_the_context_names_dataset_preset_batch_iterations_and_device():
    assert CONTEXT == "mnist-5k, preset mnist32, batch 64, 500 iterations, cpu (Test CPU)"


def _assert_stands_alone(fig):
    assert CONTEXT in _title(fig)
    for ax in fig.axes:
        if ax.axison:
            assert ax.get_ylabel(), ax.get_title()
            assert ax.get_legend() is None  # any legend is the figure's, outside the axes


def test_loss_curves(tmp_path):
    losses = pd.DataFrame({"backend": "pytorch", "iteration": np.arange(50),
                           "loss_d": np.linspace(1, 0.5, 50), "loss_g": np.linspace(1, 3, 50),
                           "step_seconds": 0.1})
    fig = figures.loss_curves(losses, tmp_path / "l.png", CONTEXT)
    _assert_stands_alone(fig)
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss_D (binary cross-entropy, nats)",
                                                    "loss_G (binary cross-entropy, nats)"]
    assert fig.legends and [t.get_text() for t in fig.legends[0].get_texts()] == ["pytorch"]


def test_throughput_prints_its_values(tmp_path):
    rows = [{"backend": "pytorch", "_median": 612.34, "_iqr": [600.0, 630.0]},
            {"backend": "chainer", "_median": 136.1, "_iqr": [130.0, 140.0]}]
    fig = figures.throughput_chart(rows, tmp_path / "t.png", CONTEXT)
    _assert_stands_alone(fig)
    (ax,) = fig.axes
    assert "images / s" in ax.get_ylabel()
    assert [t.get_text() for t in ax.texts] == ["612.3", "136.1"]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[0].startswith("run-to-run spread (measured: ") and "25%" in labels[0]
    assert labels[1] == "IQR of the steps within this run"
    (band,) = [p for p in ax.patches if p.get_label() == labels[0]]  # from the fastest down 25%
    ys = band.get_path().transformed(band.get_patch_transform()).vertices[:, 1]
    assert (ys.min(), ys.max()) == pytest.approx((612.34 / 1.25, 612.34))


def test_quality_fd_on_a_log_axis_with_the_floor_visible_and_values_printed(tmp_path):
    rows = [{"samples": "pytorch", "_fd": 98.2, "_fd_std": 4.0, "_score": 8.1},
            {"samples": "mxnet", "_fd": 1600.0, "_fd_std": 80.0, "_score": 1.4},
            {"samples": "real digits (floor)", "_fd": 4.4, "_fd_std": 0.2, "_score": 9.2}]
    fig = figures.quality_chart(rows, tmp_path / "q.png", CONTEXT)
    _assert_stands_alone(fig)
    fd_ax, score_ax = fig.axes
    assert fd_ax.get_yscale() == "log"
    low, high = fd_ax.get_ylim()
    assert low < 4.4 < 1600.0 < high  # floor and every bar on the axis
    assert [t.get_text() for t in fd_ax.texts] == ["98.2", "1600.0"]
    assert [t.get_text() for t in score_ax.texts] == ["8.10", "1.40"]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("floor (FD 4.4" in t for t in legend)
    assert "one seed, seed spread not measured" in fd_ax.get_title()  # no study, no --seeds


def test_quality_shows_every_seed_as_a_point_and_the_spread_across_seeds(tmp_path):
    rows = [{"samples": "pytorch", "_fd": 98.2, "_fd_std": 4.0, "_score": 8.1},
            {"samples": "jax", "_fd": 150.0, "_fd_std": 5.0, "_score": 7.0},
            {"samples": "real digits (floor)", "_fd": 4.4, "_fd_std": 0.2, "_score": 9.2}]
    seeds = [{"backend": "pytorch", "_fds": [98.2, 120.0, 300.0]}, {"backend": "jax", "_fds": [150.0, 90.0, 200.0]}]
    fig = figures.quality_chart(rows, tmp_path / "q.png", CONTEXT, seeds)
    fd_ax = fig.axes[0]
    from matplotlib.collections import PathCollection  # the scatter's points, not the whiskers
    points = np.concatenate([c.get_offsets() for c in fd_ax.collections if isinstance(c, PathCollection)])
    assert sorted(points[:, 1]) == sorted([98.2, 120.0, 300.0, 150.0, 90.0, 200.0])  # every seed drawn
    assert [t.get_text() for t in fd_ax.texts] == [f"{np.mean([98.2, 120.0, 300.0]):.1f}", "146.7"]  # the means
    assert fd_ax.get_ylim()[1] > 300.0
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "± std across seeds" in legend and "one training seed" in legend


def test_quality_with_one_seed_whiskers_the_study_spread_when_one_matches(tmp_path):
    rows = [{"samples": "pytorch", "_fd": 98.2, "_fd_std": 4.0, "_score": 8.1}]
    fig = figures.quality_chart(rows, tmp_path / "q.png", CONTEXT, None, {"pytorch": 40.0})
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("seed std measured at this setting" in t for t in legend)
    assert fig.axes[0].get_ylim()[1] > 98.2 + 40.0


def test_quality_with_one_backend_keeps_the_titles_apart(tmp_path):
    rows = [{"samples": "pytorch", "_fd": 98.2, "_fd_std": 4.0, "_score": 8.1}]
    fig = figures.quality_chart(rows, tmp_path / "q.png", CONTEXT)
    assert fig.get_figwidth() >= 10


def test_time_to_quality_starts_at_zero_on_a_log_axis(tmp_path):
    fig = figures.time_to_quality_chart(RESULTS, tmp_path / "ttq.png", CONTEXT)
    _assert_stands_alone(fig)
    (ax,) = fig.axes
    assert ax.get_xlim()[0] == 0 and ax.get_yscale() == "log"
    assert ax.lines[0].get_xdata()[0] == 0.0  # the point at iteration 0
    assert "seconds" in ax.get_xlabel()


@pytest.mark.parametrize("n", [1, 2])
def test_sample_grids_name_backend_and_iteration(tmp_path, n):
    grid = np.random.default_rng(0).integers(0, 256, (64, 1, 32, 32), dtype=np.uint8)
    if n == 1:
        fig = figures.save_grid(grid, tmp_path / "s.png", "pytorch: samples from the fixed z, "
                                "iteration 500", CONTEXT)
        assert _title(fig).startswith("pytorch: samples from the fixed z, iteration 500")
    else:
        fig = figures.save_grids_side_by_side({"pytorch": grid, "mxnet": grid}, tmp_path / "s.png",
                                              {"pytorch": 500, "mxnet": 500}, CONTEXT)
        assert "after 500 iterations" in _title(fig)
        assert [ax.get_title() for ax in fig.axes] == ["pytorch, iteration 500", "mxnet, iteration 500"]
    assert CONTEXT in _title(fig)


def test_scaling_chart_names_its_run_and_labels_both_axes(tmp_path):
    from common.results import replica_scaling
    rows = [{"backend": "pytorch", "replicas": n, "img/s": 300.0 * n ** 0.5,
             "efficiency": n ** -0.5} for n in (1, 2)]
    fig = replica_scaling.scaling_chart(rows, tmp_path / "s.png", CONTEXT)
    assert CONTEXT in _title(fig)
    assert all(ax.get_ylabel() and ax.get_legend() is None for ax in fig.axes)
    assert fig.legends


def test_an_interrupted_run_is_titled_with_the_iterations_it_did():
    from common.results import figures
    run = {"config": {"dataset": "mnist", "preset": "mnist32", "batch_size": 64, "iters": 100000, "device": "cpu"},
           "backends": {"pytorch": {"status": "interrupted", "iterations_done": 120},
                        "jax": {"status": "interrupted", "iterations_done": 80}}}
    assert ", 80-120 of 100000 iterations done, " in figures.run_context(run)
    run["backends"] = {"pytorch": {"status": "interrupted", "iterations_done": 120}}
    assert ", 120 of 100000 iterations done, " in figures.run_context(run)
    run["backends"] = {"pytorch": {"status": "ok", "iterations_done": 100000},
                       "mxnet": {"status": "skipped", "iterations_done": 0}}  # not installed: not a stop
    assert ", 100000 iterations, " in figures.run_context(run)


def test_no_time_to_quality_figure_when_every_backend_stopped_before_its_second_check(tmp_path):
    one = {"backends": {"pytorch": {"quality_curve": [{"iteration": 0, "train_seconds": 0.0, "fd": 2800.0}]}},
           "config": {}}
    assert figures.time_to_quality_chart(one, tmp_path / "t.png") is None
    assert not (tmp_path / "t.png").exists()
