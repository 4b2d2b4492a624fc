"""Tests for common.timing: warm-up rule and throughput statistics, on hand-made step times."""
from __future__ import annotations

import numpy as np
import pytest

from common.timing import MAX_WARMUP_STEPS, summarize, warmup_steps


def _bounded(values) -> tuple[list[float], float]:
    """A full list of per-step values in summarize's form: the first MAX_WARMUP_STEPS, the total."""
    return [float(v) for v in values[:MAX_WARMUP_STEPS]], float(np.sum(values))

BATCH = 64


@pytest.mark.parametrize("n, expected", [
    (0, 0), (1, 1), (2, 1), (19, 1),   # always the first step
    (20, 2), (55, 5), (99, 9),         # plus up to 10% ...
    (100, 10), (101, 10), (5000, 10),  # ... at most 10
])
def test_warmup_steps_rule(n, expected):
    assert warmup_steps(n) == expected


def test_empty_input():
    assert summarize([], BATCH) == {"steps": 0}
    assert summarize(np.array([]), BATCH, overhead=([], 0.0)) == {"steps": 0}


def test_first_step_reported_separately_and_excluded():
    steps = [100.0] + [0.5] * 9  # graph build, then steady steps
    s = summarize(steps, BATCH)
    assert s["first_step_seconds"] == 100.0
    assert s["steps"] == 10 and s["warmup_steps"] == 1
    assert s["step_seconds_median"] == 0.5
    assert s["img_per_s_median"] == pytest.approx(BATCH / 0.5)
    assert s["img_per_s_iqr"] == pytest.approx([BATCH / 0.5, BATCH / 0.5])
    assert s["train_seconds"] == pytest.approx(104.5)  # wall time includes every step


def test_warmup_count_decides_which_steps_are_timed():
    # 20 steps -> 2 warm-up steps. Timed medians: skip 1 -> 0.1, skip 2 -> 0.2, skip 3 -> 0.3,
    # so only the right warm-up count gives 0.2.
    steps = [9.0, 0.001] + [0.1] * 9 + [0.3] * 9
    s = summarize(steps, BATCH)
    assert s["warmup_steps"] == 2
    assert s["step_seconds_median"] == pytest.approx(0.2)
    assert s["img_per_s_median"] == pytest.approx(BATCH / 0.2)


def test_median_and_iqr_on_hand_made_times():
    # 11 steps -> 1 warm-up; timed 0.1..1.0 (in shuffled order: statistics must not assume sorted).
    timed = [0.7, 0.1, 1.0, 0.4, 0.2, 0.9, 0.5, 0.3, 0.8, 0.6]
    s = summarize([50.0] + timed, BATCH)
    # Linear-interpolated quartiles of 0.1..1.0 (positions 2.25, 4.5, 6.75 of 0..9):
    q1, med, q3 = 0.325, 0.55, 0.775
    assert s["step_seconds_median"] == pytest.approx(med)
    assert s["img_per_s_median"] == pytest.approx(BATCH / med)
    low, high = s["img_per_s_iqr"]
    # img/s falls as time rises: the slow quartile of time is the low bound of img/s.
    assert low == pytest.approx(BATCH / q3)
    assert high == pytest.approx(BATCH / q1)
    assert low <= s["img_per_s_median"] <= high


def test_iqr_bounds_are_ordered_on_random_times():
    rng = np.random.default_rng(0)
    for _ in range(20):
        t = rng.lognormal(-2, 0.5, size=rng.integers(2, 300))
        s = summarize(t, 128)
        low, high = s["img_per_s_iqr"]
        assert 0 < low <= s["img_per_s_median"] <= high
        timed = t[warmup_steps(t.size):]
        q1, q3 = np.percentile(timed, [25, 75])
        assert (low, high) == pytest.approx((128 / q3, 128 / q1))


def test_harness_overhead_fraction_on_hand_made_numbers():
    steps = [5.0] + [1.0] * 10          # timed training time: 10 s
    overhead = [100.0] + [0.25] * 10    # timed overhead: 2.5 s (the warm-up step's is excluded)
    s = summarize(steps, BATCH, overhead=_bounded(overhead))
    assert s["harness_overhead_fraction"] == pytest.approx(2.5 / (2.5 + 10.0))


def test_no_overhead_fraction_without_overhead_data():
    assert "harness_overhead_fraction" not in summarize([1.0, 1.0, 1.0], BATCH)
    assert "harness_overhead_fraction" not in summarize([1.0, 1.0, 1.0], BATCH, overhead=([], 0.0))


def test_two_steps_time_only_the_second():
    s = summarize([3.0, 0.25], 32)
    assert s["first_step_seconds"] == 3.0
    assert s["img_per_s_median"] == pytest.approx(32 / 0.25)


def test_single_step_does_not_crash():
    s = summarize([2.0], BATCH)
    assert s["steps"] == 1 and s["first_step_seconds"] == 2.0
    assert np.isfinite(s["img_per_s_median"])


def test_summary_values_are_plain_python_numbers():
    # results.json is written from these; numpy scalars would need special handling.
    s = summarize(np.array([1.0, 0.5, 0.5, 0.5]), BATCH, overhead=_bounded(np.array([0.1] * 4)))
    for key, value in s.items():
        values = value if isinstance(value, list) else [value]
        assert all(type(v) in (int, float) for v in values), key


def test_fetch_timer_counts_only_time_inside_next():
    import time
    from common.timing import FetchTimer

    def slow():
        for i in range(3):
            time.sleep(0.05)
            yield i

    timer = FetchTimer(slow())
    assert next(timer) == 0
    time.sleep(0.1)  # consumer's own work: not fetch time
    assert 0.05 <= timer.pop() < 0.1
    assert list(timer) == [1, 2]
    assert 0.1 <= timer.pop() < 0.15
    assert timer.pop() == 0.0


def test_loss_fetcher_reports_each_step_in_order_with_its_share_of_time():
    import time as _time
    from common.timing import FetchTimer, LossFetcher

    def slow():
        for i in range(5):
            _time.sleep(0.05)  # harness work: never step time
            yield i

    calls, fetched = [], []
    batches = FetchTimer(slow())
    fetcher = LossFetcher(lambda *a: calls.append(a), batches, 7, 2,
                          lambda p: fetched.append(len(p)) or [(d, g) for d, g in p])
    for i in batches:
        _time.sleep(0.3 if i == 0 else 0.02)  # the step; the first compiles
        fetcher.add((float(i), -float(i)))
    fetcher.flush()
    # the first step alone (its compile is its own time), then groups of 2
    assert [c[0] for c in calls] == [7, 8, 9, 10, 11] and fetched == [1, 2, 2]
    assert [c[1:3] for c in calls] == [(float(i), -float(i)) for i in range(5)]
    assert calls[0][3] >= 0.3  # not shared with the step fetched after it (that would be ~0.16)
    # Queued steps keep the harness's fetches (0.05 s each) in their wall time: on an
    # asynchronous device those run while the queue runs (LossFetcher.flush).
    assert all(0.06 < c[3] < 0.1 for c in calls[1:])  # (2 x 0.05 + 2 x 0.02) / 2 each


def test_the_staged_loop_takes_and_stages_the_next_batch_before_the_fetch():
    """backends.base.staged_loop (JAX on a GPU): batch i+1 is taken from the harness and staged
    after step i is queued and before step i's losses may be fetched (the sync); every batch
    once, in order, unchanged."""
    from backends.base import staged_loop
    events = []

    def harness():
        for i in range(3):
            events.append(("take", i))
            yield (i, -i)

    def stage(real, z):
        events.append(("stage", real))
        return ("on device", real, z)

    def step(tag, real, z):
        assert tag == "on device" and z == -real
        events.append(("step", real))
        return real

    staged_loop(harness(), step, stage, lambda losses: events.append(("fetch", losses)))
    assert events == [("take", 0), ("stage", 0), ("step", 0), ("take", 1), ("stage", 1), ("fetch", 0),
                      ("step", 1), ("take", 2), ("stage", 2), ("fetch", 1), ("step", 2), ("fetch", 2)]
    events.clear()
    staged_loop(iter(()), step, stage, lambda losses: events.append(("fetch", losses)))
    assert events == []


def test_timed_window_runs_from_the_last_warmup_report_to_the_last():
    """20 steps: 2 warm-up. The window starts at step 1's report (the end of warm-up), not step
    0's (compile) or step 2's (a timed step), and ends at the last report."""
    steps = [9.0, 0.001] + [0.1] * 18
    clock = [100.0 + i for i in range(20)]
    assert summarize(steps, BATCH, clock=(clock[:MAX_WARMUP_STEPS], clock[-1]))["timed_window_monotonic"] == [101.0, 119.0]
    assert "timed_window_monotonic" not in summarize(steps, BATCH)  # no clock, no window
    assert "timed_window_monotonic" not in summarize([9.0], BATCH, clock=([1.0], 1.0))  # all warm-up
