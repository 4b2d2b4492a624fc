"""Engines for backends/staging.py's StagingRing without a GPU.

- HostEngine: numpy buffers, copies done at once, events always complete: what a ring on the CPU
  computes (the Chainer backend's train() runs through it in a CPU test).
- SimulatedDevice: CUDA's ordering rules, nothing more. Every stream is a FIFO queue of
  operations that run later, when the device is advanced (`run`, in an order drawn from a seeded
  generator) or when the host waits for an event; a copy reads its pinned buffer when it runs,
  not when it is queued, and a step reads its device buffers when it runs. An event waited on
  (stream.wait_event, event.synchronize) is its latest record at the time of the call, as in
  CUDA; one never recorded is complete. A ring that overwrites a buffer too early, or a step
  that runs before its copy, then shows as wrong values. A new device buffer models a pooling
  allocator's reuse: a kernel queued earlier on the compute stream still reads the block, and
  counts a `violation` if a copy wrote it first.
"""
from __future__ import annotations

import random

import numpy as np


class HostEvent:
    def record(self, stream=None):
        pass

    def synchronize(self):
        pass


class HostArray(np.ndarray):
    def set(self, host, stream=None):
        np.copyto(self, host)


class HostStream:
    def wait_event(self, event):
        pass


class HostEngine:
    copy_stream = compute_stream = HostStream()

    def __init__(self):
        self.allocations = 0  # host and device buffers made

    def event(self):
        return HostEvent()

    def pinned(self, shape, dtype):
        self.allocations += 1
        return np.empty(shape, dtype)

    def device(self, shape, dtype):
        self.allocations += 1
        return np.empty(shape, dtype).view(HostArray)


class SimEvent:
    def __init__(self, sim):
        self.sim, self.records, self.completed = sim, 0, 0

    def record(self, stream):
        self.records += 1
        generation = self.records
        stream.queue.append(lambda: setattr(self, "completed", max(self.completed, generation)))

    def synchronize(self):
        self.sim.host_waits += 1
        generation = self.records
        self.sim.run_until(lambda: self.completed >= generation)


class SimStream:
    def __init__(self, name):
        self.name, self.queue, self.barrier = name, [], None

    def wait_event(self, event):
        generation = event.records  # the latest record now, as cudaStreamWaitEvent
        self.queue.append(("wait", event, generation))

    def runnable(self) -> bool:
        if not self.queue:
            return False
        op = self.queue[0]
        return not isinstance(op, tuple) or op[1].completed >= op[2]

    def run_one(self):
        op = self.queue.pop(0)
        if not isinstance(op, tuple):
            op()


class SimArray:
    """A device buffer: its bytes change only when a queued copy runs."""

    def __init__(self, shape, dtype):
        self.data = np.full(shape, np.nan, dtype)

    def set(self, host, stream):
        stream.queue.append(lambda: np.copyto(self.data, host))


class SimulatedDevice:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.copy_stream, self.compute_stream = SimStream("copy"), SimStream("compute")
        self.pinned_allocations = self.device_allocations = self.host_waits = self.violations = 0

    # the engine
    def event(self):
        return SimEvent(self)

    def pinned(self, shape, dtype):
        self.pinned_allocations += 1
        return np.full(shape, np.nan, dtype)

    def device(self, shape, dtype):
        self.device_allocations += 1
        array = SimArray(shape, dtype)
        self.compute_stream.queue.append(lambda: self.previous_owner_reads(array))
        return array

    def previous_owner_reads(self, array: SimArray) -> None:
        self.violations += not np.isnan(array.data).all()

    # the device
    def run(self, steps: int) -> None:
        """Run up to `steps` operations, each from a stream drawn at random among the runnable."""
        for _ in range(steps):
            ready = [s for s in (self.copy_stream, self.compute_stream) if s.runnable()]
            if not ready:
                return
            self.rng.choice(ready).run_one()

    def run_until(self, done) -> None:
        while not done():
            ready = [s for s in (self.copy_stream, self.compute_stream) if s.runnable()]
            if not ready:
                raise RuntimeError("deadlock: the host waits for an event no stream can reach")
            self.rng.choice(ready).run_one()

    def drain(self) -> None:
        self.run_until(lambda: not (self.copy_stream.queue or self.compute_stream.queue))

    def read_on_compute(self, arrays, out: list) -> None:
        """A step: queued on the compute stream, it reads the device buffers when it runs."""
        self.compute_stream.queue.append(lambda: out.append(tuple(a.data.copy() for a in arrays)))
