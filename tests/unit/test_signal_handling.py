"""The signal handling of the parent and the worker (common/harness/interrupts.py), called
directly: the first signal raises where raising is on, every later one is only counted."""
from __future__ import annotations

import signal

import pytest

from common.harness.interrupts import Interrupts


def test_the_first_signal_raises_and_a_second_is_only_counted():
    stops = Interrupts(raising=True)
    with pytest.raises(KeyboardInterrupt):
        stops.handle(signal.SIGINT, None)
    stops.handle(signal.SIGTERM, None)  # e.g. the parent's SIGTERM after the terminal's SIGINT
    assert stops.count == 2 and stops.name() == "SIGINT"


def test_after_shutdown_no_signal_raises():
    stops = Interrupts(raising=True)
    stops.shutdown()
    stops.handle(signal.SIGTERM, None)
    assert stops.count == 1 and stops.name() == "SIGTERM"


def test_the_parent_raises_only_inside_a_raising_block():
    stops = Interrupts(raising=False)
    with pytest.raises(KeyboardInterrupt):
        with stops.raising():
            stops.handle(signal.SIGINT, None)
    assert not stops.is_raising
    stops.handle(signal.SIGINT, None)  # outside: counted, the run stops before the next backend
    with stops.raising():
        stops.handle(signal.SIGINT, None)  # not the first: never raises twice
    assert stops.count == 3


def test_restore_gives_back_the_handlers_and_a_fresh_count():
    before = signal.getsignal(signal.SIGINT)
    stops = Interrupts(raising=False).install()
    assert signal.getsignal(signal.SIGINT) == stops.handle
    stops.handle(signal.SIGINT, None)
    stops.restore()
    assert signal.getsignal(signal.SIGINT) == before and stops.count == 0
