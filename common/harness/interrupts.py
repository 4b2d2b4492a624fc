"""Ctrl-C and SIGTERM, handled once: the first signal stops the work, any later one (a second
Ctrl-C, the parent's SIGTERM after a terminal's SIGINT reached the whole process group) is
counted and ignored, so the summary and the result files are always written.

The parent (run_all.py) raises only where it waits on a child or loads data (`raising()`);
elsewhere a signal is recorded and the run stops before the next backend. The worker raises
on the first signal while it trains, then `shutdown()` before it summarises and writes.
"""
from __future__ import annotations

import contextlib
import os
import signal

# Tests only: a comma-separated list of points (SIGNAL_POINTS) where the worker sends itself a
# SIGTERM, i.e. a second signal inside its summary and shutdown code.
TEST_SIGNAL_ENV = "DCGAN_BENCH_TEST_SIGNAL_AT"
SIGNAL_POINTS = ("summary", "write")


class Interrupts:
    def __init__(self, raising: bool):
        self.signals: list[int] = []
        self.is_raising = raising
        self.previous: dict = {}

    @property
    def count(self) -> int:
        return len(self.signals)

    def install(self) -> "Interrupts":
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self.handle)
        return self

    def restore(self) -> None:
        """The handlers from before install(), and a fresh count (run_all.main called in-process,
        as tests do, leaves the caller's Ctrl-C as it was)."""
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous.clear()
        self.signals.clear()

    def handle(self, signum, frame) -> None:
        self.signals.append(signum)
        if self.is_raising and self.count == 1:
            raise KeyboardInterrupt

    def shutdown(self) -> None:
        """From here on a signal never raises: the work is being summarised and saved."""
        self.is_raising = False

    @contextlib.contextmanager
    def raising(self):
        """A signal raises KeyboardInterrupt inside this block (if none came before)."""
        before, self.is_raising = self.is_raising, True
        try:
            yield
        finally:
            self.is_raising = before

    def name(self) -> str:
        return signal.Signals(self.signals[0]).name if self.signals else ""


def test_signal(point: str) -> None:
    """Tests only (TEST_SIGNAL_ENV): a second signal delivered at `point` of the shutdown."""
    if point in os.environ.get(TEST_SIGNAL_ENV, "").split(","):
        os.kill(os.getpid(), signal.SIGTERM)


# The parent's (run_all.py's) handling, installed by its main(); until then Python's default
# (KeyboardInterrupt on SIGINT) applies, which the `raising` blocks expect anyway.
process = Interrupts(raising=False)
