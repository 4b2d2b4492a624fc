"""Throughput from per-step times: warm-up excluded, median with spread, first step separate."""
from __future__ import annotations

import time

import numpy as np


MAX_WARMUP_STEPS = 10  # warmup_steps never leaves out more


def warmup_steps(n_steps: int) -> int:
    """Steps left out of the throughput statistics: always the first (graph build, allocator,
    autotune), and up to 10% more for caches and clocks to settle, at most MAX_WARMUP_STEPS."""
    return min(n_steps, max(1, min(MAX_WARMUP_STEPS, n_steps // 10)))


def summarize(step_seconds, batch_size: int, overhead: tuple | None = None,
              clock: tuple | None = None) -> dict:
    """img/s median and interquartile range over the steps after warm-up.

    Per-step throughput is batch/seconds; its quartiles come from the step times' quartiles
    (img/s is monotone in seconds, so the 25th percentile of time is the 75th of img/s).
    The harness keeps of its per-step records only what the summary needs, so its memory stays
    flat: overhead = (the first MAX_WARMUP_STEPS steps' harness seconds, all steps' total) gives
    the harness's share of the timed wall time; clock = (the first MAX_WARMUP_STEPS reports'
    time.monotonic, the last report's) gives the timed steps' window on that clock, from the
    report of the last warm-up step to the last report: the GPU check keeps the power samples
    inside it. Steps reported in groups (the losses of K queued steps fetched at once) share one
    report, so the window may start up to K-1 timed steps late.
    """
    t = np.asarray(step_seconds, dtype=np.float64)
    if t.size == 0:
        return {"steps": 0}
    w = warmup_steps(t.size)
    timed = t[w:] if t.size > w else t[-1:]
    q1, med, q3 = np.percentile(timed, [25, 50, 75])
    summary = {
        "steps": int(t.size),
        "warmup_steps": int(w),
        "first_step_seconds": float(t[0]),
        "step_seconds_median": float(med),
        "img_per_s_median": float(batch_size / med),
        "img_per_s_iqr": [float(batch_size / q3), float(batch_size / q1)],
        "train_seconds": float(t.sum()),
    }
    if clock is not None and t.size > w and len(clock[0]) >= w and clock[1] is not None:
        summary["timed_window_monotonic"] = [float(clock[0][w - 1]), float(clock[1])]
    if overhead is not None and len(overhead[0]) >= min(w, t.size) and t.size > w:
        timed_overhead = float(overhead[1]) - float(sum(overhead[0][:w]))
        # The harness's own share of wall time (logging, progress, checks between steps).
        summary["harness_overhead_fraction"] = float(timed_overhead / (timed_overhead + timed.sum()))
    return summary


class FetchTimer:
    """Wraps the harness's batch iterator and keeps the time spent fetching from it, so a
    backend's step time excludes the harness's data work (which the step log then counts as
    harness overhead). `pop()` returns the time since the last pop."""

    def __init__(self, batches):
        self._it = iter(batches)
        self._seconds = 0.0

    def __iter__(self):
        return self

    def __next__(self):
        t0 = time.perf_counter()
        try:
            return next(self._it)
        finally:
            self._seconds += time.perf_counter() - t0

    def pop(self) -> float:
        seconds, self._seconds = self._seconds, 0.0
        return seconds


class LossFetcher:
    """Reports steps to the harness's on_step in batches of `every`: a loss fetch is a device
    sync, so on a GPU the losses of `every` queued steps are fetched at once and those steps
    share the elapsed time equally; on a CPU (every=1) each step is reported as it ends. The
    first step is always fetched alone: it holds the compile and autotune work (torch.compile,
    XLA, cuDNN's algorithm search), which must be the first step's own time (first_step_seconds,
    and warm-up), not spread over the `every` steps fetched with it. Time spent in the
    harness's batch source (the FetchTimer) is not step time where steps are fetched one by one,
    nor is on_step's (flush says why queued steps keep the fetch).

    to_numpy(pending) turns the queued per-step loss handles into an (n, 2) array; it is the
    sync, and may do more device work that belongs to the steps (e.g. wait for all updates)."""

    def __init__(self, on_step, batches: FetchTimer, start: int, every: int, to_numpy):
        self.on_step, self.batches, self.every, self.to_numpy = on_step, batches, every, to_numpy
        self.iteration = start
        self.first = True  # the first step of this loop: fetched alone (the class docstring)
        self.pending: list = []
        self.restart()

    def restart(self) -> None:
        """Start timing now (e.g. after a loop's own set-up, or a lookahead fetch)."""
        self.batches.pop()
        self.t0 = time.perf_counter()

    def add(self, losses) -> None:
        self.pending.append(losses)
        if len(self.pending) >= self.every or self.first:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        pending, self.pending, self.first = self.pending, [], False
        losses = self.to_numpy(pending)
        fetched = self.batches.pop()
        # Steps fetched one by one (a CPU): the device waits while the harness fetches the next
        # batch, so that time is the harness's, not the step's. Queued steps (every > 1, an
        # asynchronous GPU): the harness fetches while the device still runs the queue, so
        # subtracting its time would credit the backend with time it did not save (a 5 ms step
        # beside 2 ms of fetching would read 3 ms): the group's wall time stays whole, an upper
        # bound on the step, and the harness's cost shows against the bare loop instead.
        wall = time.perf_counter() - self.t0 - (fetched if self.every == 1 else 0.0)
        seconds = wall / len(pending)
        for loss_d, loss_g in losses:
            self.on_step(self.iteration, float(loss_d), float(loss_g), seconds)
            self.iteration += 1
        self.t0 = time.perf_counter()
