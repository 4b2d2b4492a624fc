"""Numbers that say how far to trust them: machine load per backend, the --compare noise rule,
and the headline losses (mean ± std over the last 10% of iterations)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from common import sysinfo
from common.harness.steplog import loss_tail
from common.results import compare, markdown, tables


def _summary(median, lo, hi):
    return {"img_per_s_median": median, "img_per_s_iqr": [lo, hi]}


@pytest.mark.parametrize("a,b,verdict", [
    (_summary(100, 95, 105), _summary(140, 130, 150), "beyond noise"),   # disjoint, +40%
    (_summary(100, 95, 105), _summary(120, 115, 125), "within noise"),   # disjoint, +20% < 25%
    (_summary(100, 60, 140), _summary(140, 130, 150), "within noise"),   # +40% but IQRs overlap
    (_summary(140, 130, 150), _summary(100, 95, 105), "beyond noise"),   # a slowdown, same rule
    (_summary(100, 95, 105), {}, ""),                                    # nothing to compare
])
def test_the_noise_rule(a, b, verdict):
    assert compare.noise_verdict(a, b) == verdict


def _run(median, iqr, load_before, load_after, losses=(1.0, 2.0)):
    return {"config": {"threads": 2}, "provenance": {}, "backends": {"pytorch": {
        "status": "ok", "summary": _summary(median, *iqr),
        "machine_load": {"load1_before": load_before, "load1_after": load_after},
        "final_losses": {"iteration": 9, "loss_d": losses[0], "loss_g": losses[1]},
        "loss_tail": {"from_iteration": 9, "iterations": 1, "loss_d_mean": 1.5, "loss_d_std": 0.25,
                      "loss_g_mean": 6.75, "loss_g_std": 1.0}}}}


def test_compare_labels_the_change_states_the_rule_and_warns_when_loads_differ():
    text = compare.compare_runs(_run(62.7, (60, 65), 0.5, 2.1), _run(46.7, (44, 49), 3.9, 4.0))
    assert "within noise" not in text.split("\n")[2]  # -25.6% with disjoint IQRs: beyond 25%
    assert "beyond noise" in text
    assert "IQRs do not overlap" in text and "25%" in text
    assert "warning: pytorch: the machine's load differed (2.1 -> 4.0)" in text
    same = compare.compare_runs(_run(62.7, (60, 65), 0.5, 2.1), _run(60.0, (58, 63), 0.6, 2.0))
    assert "within noise" in same and "load differed" not in same


def test_the_table_headlines_the_tail_mean_and_names_the_last_step():
    row = tables.summary_rows(_run(50, (45, 55), 0.1, 2.0, losses=(0.478, 3.331)))[0]
    assert row["loss_D (last 10%)"] == "1.500 ± 0.250" and row["loss_G (last 10%)"] == "6.750 ± 1.000"
    assert row["last step D / G"] == "0.478 / 3.331"
    assert row["load"] == "0.1 -> 2.0"


def test_a_v1_result_without_tail_or_load_still_tabulates():
    r = _run(50, (45, 55), 0, 0)
    del r["backends"]["pytorch"]["loss_tail"], r["backends"]["pytorch"]["machine_load"]
    row = tables.summary_rows(r)[0]
    assert "loss_D (last 10%)" not in row and row["last step D / G"] == "1.000 / 2.000"
    assert tables.busy_warnings(r) == []


def test_busy_machine_warning_when_load_exceeds_threads():
    assert tables.busy_warnings(_run(50, (45, 55), 0.3, 1.9)) == []
    # a 2-thread run alone on 2 cores, measured (main job, 5 backends): not busy
    assert tables.busy_warnings(_run(50, (45, 55), 2.2, 2.0)) == []
    (line,) = tables.busy_warnings(_run(50, (45, 55), 3.2, 4.1))
    assert "pytorch" in line and "3.2 before, 4.1 after, for 2 threads" in line


def test_loss_tail_is_the_last_tenth_of_the_csv(tmp_path):
    f = tmp_path / "losses.csv"
    d = np.arange(30, dtype=float)
    f.write_text("backend,iteration,loss_d,loss_g,step_seconds\n"
                 + "".join(f"pytorch,{i},{float(d[i])!r},{float(2 * d[i])!r},0.1\n" for i in range(30)))
    tail = loss_tail(f)
    assert tail["iterations"] == 3 and tail["from_iteration"] == 27
    assert tail["loss_d_mean"] == pytest.approx(28.0) and tail["loss_g_mean"] == pytest.approx(56.0)
    assert tail["loss_d_std"] == pytest.approx(np.std([27, 28, 29]))
    f.write_text("backend,iteration,loss_d,loss_g,step_seconds\npytorch,0,1.0,2.0,0.1\n")
    assert loss_tail(f)["iterations"] == 1  # at least one row
    f.write_text("backend,iteration,loss_d,loss_g,step_seconds\n")
    assert loss_tail(f) is None


def test_machine_load_steal_fraction_between_samples():
    before = {"load1": 0.5, "steal_ticks": 100, "total_ticks": 1000}
    after = {"load1": 2.5, "steal_ticks": 150, "total_ticks": 2000}
    assert sysinfo.machine_load(before, after) == {"load1_before": 0.5, "load1_after": 2.5,
                                                   "cpu_steal_fraction": 0.05}
    assert "cpu_steal_fraction" not in sysinfo.machine_load({"load1": 1.0}, {"load1": 1.0})
    assert sysinfo.load_sample()["load1"] >= 0


def _runs(**medians_iqrs):
    return {"config": {"threads": 2}, "provenance": {}, "backends": {
        name: {"status": "ok", "summary": _summary(m, *iqr)} for name, (m, iqr) in medians_iqrs.items()}}


def test_the_throughput_table_shows_the_measured_run_to_run_spread_and_what_it_leaves_unranked():
    # the case: PyTorch 470 against TensorFlow 492 img/s in one run, IQRs apart
    results = _runs(pytorch=(470, (460, 480)), tensorflow=(492, (485, 500)), chainer=(300, (290, 310)))
    rows = {r["backend"]: r for r in tables.summary_rows(results)}
    assert rows["tensorflow"]["vs fastest"] == "fastest"
    assert rows["pytorch"]["vs fastest"] == "-4%, within noise"     # under 25%
    assert rows["chainer"]["vs fastest"] == "-39%, beyond noise"    # disjoint IQRs, over 25%
    assert tables.RUN_TO_RUN_SPREAD == compare.RUN_TO_RUN_SPREAD == 0.25  # one source
    for text in (tables.stdout_table(results), markdown.report_markdown(
            {**results, "command": "run_all.py", "config": {"dataset": "mnist", "preset": "mnist32",
                                                             "iters": 9, "batch_size": 64, "seed": 0,
                                                             "shared_init": True, "device": "cpu"}},
            tables.summary_rows(results), [], Path("."))):
        assert "vs fastest" in text and "-4%, within noise" in text
        assert "Run-to-run spread: two runs of one command differed by up to 25%" in text
        assert tables.RUN_TO_RUN_MEASURED in text
        assert "Within it of the fastest (tensorflow): pytorch; this run does not rank them." in text


def test_one_backend_gets_the_spread_line_but_no_ranking_column():
    results = _runs(pytorch=(470, (460, 480)))
    (row,) = tables.summary_rows(results)
    assert "vs fastest" not in row
    assert tables.stdout_table(results).splitlines()[-1].startswith("Run-to-run spread: ")
