"""The harness side of `on_step`: the same timing, loss log, progress and divergence check for
every backend. The loss CSV is appended and flushed as training goes, so an interrupted or
crashed run keeps every iteration it finished."""
from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from pathlib import Path

from common.results.schema import LOSS_COLUMNS, TAIL_FRACTION
from common.timing import MAX_WARMUP_STEPS, summarize


def loss_tail(csv_path: Path, fraction: float = TAIL_FRACTION) -> dict | None:
    """Mean and std (ddof 0) of loss_D and loss_G over the last `fraction` of a losses.csv's
    rows (the whole run, also across a resume); None if it has none."""
    import warnings

    import numpy as np  # the worker has it loaded already; the parent never calls this
    try:
        with warnings.catch_warnings():  # an empty log is None, not a warning
            warnings.simplefilter("ignore", UserWarning)
            rows = np.loadtxt(csv_path, delimiter=",", skiprows=1, usecols=(1, 2, 3), ndmin=2)
    except (OSError, ValueError):
        return None
    if not len(rows):
        return None
    n = max(1, round(len(rows) * fraction))
    tail = rows[-n:]
    return {"from_iteration": int(tail[0, 0]), "iterations": int(n),
            "loss_d_mean": float(tail[:, 1].mean()), "loss_d_std": float(tail[:, 1].std()),
            "loss_g_mean": float(tail[:, 2].mean()), "loss_g_std": float(tail[:, 2].std())}


class Diverged(RuntimeError):
    def __init__(self, iteration: int, loss_d: float, loss_g: float):
        super().__init__(f"non-finite loss at iteration {iteration} (loss_D={loss_d}, loss_G={loss_g})")
        self.iteration = iteration


class TargetReached(Exception):
    """Raised from on_step when a probe's FD reached the run's target (--target-fd): it unwinds
    every backend's loop from the same place as Diverged, so all stop alike, at that iteration."""

    def __init__(self, point: dict):
        super().__init__(f"FD {point['fd']:.1f} at iteration {point['iteration']}")
        self.point = point


class StepLog:
    flush_every = 25

    def __init__(self, backend: str, csv_path: Path, start: int, stop: int, batch_size: int,
                 progress: bool = True, probe=None, probe_every: int = 0,
                 target_fd: float | None = None):
        self.backend, self.batch_size = backend, batch_size
        # probe(iterations_done, train_seconds) -> its curve point {"iteration", "train_seconds",
        # "fd"}: an evaluation every probe_every iterations (the time-to-quality curve); its time
        # is neither step time nor harness overhead. With target_fd, the last iteration is
        # probed too, and a point whose FD is at or under target_fd stops training (TargetReached).
        self.probe, self.probe_every, self.probe_seconds = probe, int(probe_every or 0), 0.0
        self.target_fd = target_fd
        self.start, self.stop, self.next_iteration = start, stop, start
        # Memory stays flat however long the run: every step's time is in the CSV (read back for
        # the summary, step_times), and only the warm-up steps' clock and overhead are held, with
        # running totals. Three in-memory lists of per-step floats were the soak's steady RSS
        # slope, 0.09 MiB per 1000 iterations (benchmarks/README.md#memory-soak).
        self.train_seconds = 0.0  # this process's step times summed, in step order
        # When each step was reported, on time.monotonic (one clock for every process of a Linux
        # machine): the window of the timed steps, which the GPU check's power samples are cut to.
        self.clock_head: list[float] = []  # the first MAX_WARMUP_STEPS reports
        self.clock_last: float | None = None
        self.overhead_head: list[float] = []
        self.overhead_total = 0.0
        self.last = None  # (iteration, loss_d, loss_g)
        self.csv_path = csv_path
        new = not csv_path.exists() or csv_path.stat().st_size == 0
        self._csv = open(csv_path, "a", buffering=1 << 16)
        if new:
            self._csv.write(",".join(LOSS_COLUMNS) + "\n")
        self._bar = None
        if progress:
            from tqdm import tqdm
            self._bar = tqdm(total=stop - start, desc=f"{backend:>10}", unit="it", file=sys.stderr,
                             mininterval=0.5, dynamic_ncols=True, leave=True)
        self._returned = time.perf_counter()

    def __call__(self, iteration: int, loss_d: float, loss_g: float, seconds: float) -> None:
        entered = time.perf_counter()
        if iteration != self.next_iteration:
            raise RuntimeError(f"{self.backend}: on_step got iteration {iteration}, "
                               f"expected {self.next_iteration}")
        self.next_iteration += 1
        self.train_seconds += seconds
        self.clock_last = time.monotonic()
        if len(self.clock_head) < MAX_WARMUP_STEPS:
            self.clock_head.append(self.clock_last)
        self._csv.write(f"{self.backend},{iteration},{loss_d!r},{loss_g!r},{seconds!r}\n")
        self.last = (iteration, loss_d, loss_g)
        if (iteration - self.start + 1) % self.flush_every == 0:
            self._csv.flush()
        if self._bar is not None:
            self._bar.update(1)
            if self._bar.n % 5 == 0 or iteration + 1 == self.stop:
                self._bar.set_postfix_str(f"loss_D={loss_d:.3f} loss_G={loss_g:.3f} "
                                          f"img/s={self.batch_size / max(seconds, 1e-12):.0f}",
                                          refresh=False)
        if not (math.isfinite(loss_d) and math.isfinite(loss_g)):
            raise Diverged(iteration, loss_d, loss_g)
        now = time.perf_counter()
        # Harness time: inside this call, plus any wall time between calls the step did not claim.
        outside = max(0.0, (entered - self._returned) - seconds)
        overhead = outside + (now - entered)
        self.overhead_total += overhead
        if len(self.overhead_head) < MAX_WARMUP_STEPS:
            self.overhead_head.append(overhead)
        if self.probe and self.probe_every and self._probe_due(iteration + 1):
            point = self.probe(iteration + 1, self.train_seconds)
            self.probe_seconds += time.perf_counter() - now
            now = time.perf_counter()
            if self.target_fd is not None and point and point["fd"] <= self.target_fd:
                self._returned = now
                raise TargetReached(point)
        self._returned = now

    def _probe_due(self, done: int) -> bool:
        return done % self.probe_every == 0 or (self.target_fd is not None and done == self.stop)

    def flush(self) -> None:
        """Every logged row on disk (before a checkpoint claims those iterations are done)."""
        self._csv.flush()
        os.fsync(self._csv.fileno())

    @contextlib.contextmanager
    def paused(self):
        """Harness work between steps (a checkpoint) that is not loop overhead."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._returned += time.perf_counter() - t0

    @property
    def iterations_done(self) -> int:
        return self.next_iteration - self.start

    def step_times(self):
        """This process's step times (a numpy array, in step order) from the CSV it wrote: the
        rows from its first iteration on (a resumed run's earlier rows are the stopped attempt's)."""
        import numpy as np  # the worker has it loaded already
        if not self._csv.closed:
            self._csv.flush()
        n = self.next_iteration - self.start
        if n == 0:
            return np.zeros(0)
        rows = np.loadtxt(self.csv_path, delimiter=",", skiprows=1, usecols=(1, 4), ndmin=2)
        return rows[rows[:, 0] >= self.start, 1][:n]

    def summary(self) -> dict:
        """The timing summary of this process's steps (common/timing.py's summarize)."""
        return summarize(self.step_times(), self.batch_size, (self.overhead_head, self.overhead_total),
                         (self.clock_head, self.clock_last))

    def close(self) -> None:
        self._csv.flush()
        self._csv.close()
        if self._bar is not None:
            self._bar.close()
