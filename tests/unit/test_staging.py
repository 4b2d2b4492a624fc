"""backends/staging.py's ring on a simulated device (tests.support.fake_device.py): CUDA's ordering
rules with copies and steps that run later, in a random order, reading their buffers when they
run. The batches the steps see must be the harness's, in order, whatever the interleaving; and
each of the ring's three waits is shown necessary (without it the same simulation sees wrong
values), so the first test can fail."""
from __future__ import annotations

import random

import numpy as np
import pytest

from backends.staging import StagingRing
from tests.support.fake_device import HostEngine, SimEvent, SimulatedDevice

SHAPES = [((8, 1, 4, 4), (8, 3)), ((5, 1, 4, 4), (5, 3))]  # two batch sizes: two rings


def harness_batches(count: int, seed: int = 0):
    """(real, z) batches of both shapes, in runs (a shape change mid-stream, then back)."""
    rng = np.random.default_rng(seed)
    pattern = [0] * 5 + [1] * 3 + [0] * 4 + [1, 0, 1, 1, 0]
    return [tuple(rng.standard_normal(shape).astype(np.float32) for shape in SHAPES[pattern[i % len(pattern)]])
            for i in range(count)]


def run_staged(sim: SimulatedDevice, batches, slots: int, seed: int):
    """The updater's pattern: stage batch i, queue its step, let the device run a little (the
    host keeps ahead); returns what every step read and the deepest copy queue seen."""
    ring, seen, deepest = StagingRing(sim, slots), [], 0
    rng = random.Random(seed)
    for batch in batches:
        sim.read_on_compute(ring.stage(batch), seen)
        deepest = max(deepest, len(sim.copy_stream.queue))
        sim.run(rng.randint(0, 6))
    sim.drain()
    return seen, deepest


def same(seen, batches) -> bool:
    return len(seen) == len(batches) and all(
        all(np.array_equal(a, b) for a, b in zip(s, batch)) for s, batch in zip(seen, batches))


@pytest.mark.parametrize("slots", [1, 2, 3])
def test_every_step_reads_its_batch_whatever_the_interleaving(slots):
    batches = harness_batches(40)
    deepest = 0
    for seed in range(30):
        sim = SimulatedDevice(seed)
        seen, depth = run_staged(sim, batches, slots, seed)
        assert same(seen, batches), f"seed {seed}: a step read another batch's values"
        assert sim.violations == 0, f"seed {seed}: a copy wrote a block queued kernels still read"
        deepest = max(deepest, depth)
    assert deepest >= 3  # copies were in flight while the host staged more: the rules were exercised


def test_one_pinned_and_one_device_buffer_per_array_slot_and_shape_not_per_batch():
    sim = SimulatedDevice(0)
    run_staged(sim, harness_batches(60), slots=2, seed=0)
    per_ring = 2 * 2  # slots x arrays (real, z)
    assert sim.pinned_allocations == sim.device_allocations == per_ring * len(SHAPES)


@pytest.mark.parametrize("missing", ["host waits for the copy before reusing pinned memory",
                                     "copy waits for the step that read the device buffer",
                                     "step waits for its copy",
                                     "a new slot's first copy waits for the compute stream"])
def test_each_wait_of_the_ring_is_needed(monkeypatch, missing):
    """Remove one wait: some interleaving then hands a step wrong values (the simulation can see
    every race the ring guards against)."""
    batches = harness_batches(40)
    failures = 0
    for seed in range(30):
        sim = SimulatedDevice(seed)
        if missing.startswith("host"):
            monkeypatch.setattr(SimEvent, "synchronize", lambda self: None)
        elif missing.startswith("copy"):
            sim.copy_stream.wait_event = lambda event: None
        elif missing.startswith("step"):
            sim.compute_stream.wait_event = lambda event: None
        else:  # the slot's first `released` never recorded: its wait is on a never-recorded event
            monkeypatch.setattr(SimEvent, "record", record_after_first_copy(SimEvent.record))
        seen, _ = run_staged(sim, batches, 2, seed)
        failures += not same(seen, batches) or sim.violations > 0
    assert failures > 0


def record_after_first_copy(record):
    """SimEvent.record without each event's first record on the compute stream: for a slot's
    `released`, the one at allocation (a `copied` is recorded on the copy stream only)."""
    def patched(self, stream):
        if stream.name == "compute" and not getattr(self, "first_dropped", False):
            self.first_dropped = True
            return None
        return record(self, stream)
    return patched


def test_the_host_waits_only_when_a_slot_comes_round_again():
    """A device that runs only when the host waits: the first `slots` batches of a shape stage
    without any wait, and every later one waits once (its slot's previous copy)."""
    sim, seen = SimulatedDevice(0), []
    ring = StagingRing(sim, slots=3)
    batches = [b for b in harness_batches(40) if b[0].shape[0] == 8][:10]
    for batch in batches:
        sim.read_on_compute(ring.stage(batch), seen)
    assert sim.host_waits == 10 - 3
    sim.drain()
    assert same(seen, batches)


def test_host_engine_and_chainer_converter_call():
    ring = StagingRing(HostEngine())
    batch = harness_batches(1)[0]
    staged = ring(batch, "any device")  # Chainer's converter(batch, device)
    assert all(np.array_equal(a, b) for a, b in zip(staged, batch))
    assert ring.info() == "pinned ring of 2, copy stream"
    with pytest.raises(ValueError, match="at least one slot"):
        StagingRing(HostEngine(), slots=0)
