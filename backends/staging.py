"""Staged host-to-device copies of the harness's batches for a backend whose framework has no
pipeline of its own (Chainer on CuPy: backends/chainer/runtime.py `batch_stager`). Framework-free:
the ring is written against `engine`, a few stream primitives that CuPy provides on a GPU and a
simulated device provides in the CPU tests (tests/unit/test_staging.py).

Why: from pageable memory a host-to-device copy is synchronous (cudaMemcpy): the host first waits
for every kernel queued before it, then the device idles during the copy and until the host has
launched the next step. Here each batch is copied on the host into a pinned buffer, then copied
to the device asynchronously on a copy stream while the compute stream still runs earlier steps;
the compute stream waits (on the device, not the host) for that copy before the step reads it.

A ring of `slots` slots, one ring per (shape, dtype) of the batch's arrays, allocated on first
use and then reused for every batch: per slot a pinned host buffer and a device buffer for each
array, `copied` (recorded on the copy stream after the slot's copy) and `released` (recorded on
the compute stream after the step that read the slot was queued). Two rules make reuse safe:
- the host overwrites a slot's pinned buffer only after `copied` of its previous copy completed
  (copied.synchronize(): the one place the host can wait);
- the copy stream overwrites a slot's device buffer only after `released` of its previous batch
  (copy_stream.wait_event: a device-side wait), i.e. after the step that read it ran; a new
  slot's `released` is recorded when its buffers are allocated (see below).
`released` is recorded for batch n when batch n+1 is staged: the updater stages a batch at the
start of its step, so by then step n is queued whole. With 2 slots the copy of batch n waits for
step n-2 and overlaps step n-1, and the host runs at most about 4 steps ahead of the device.

The device buffers are the ring's own, held for its life, not one allocation per batch: a block a
pooling allocator hands back after the compute stream freed it could be written by a copy on
another stream while kernels queued on the compute stream still read it (CuPy's pool orders
reuse within one stream only). For the same reason a slot's first copy waits for the work the
compute stream had queued when the slot was allocated. The values are the
harness's bytes, in its order: nothing is converted, only copied.

`engine` provides: `copy_stream` and `compute_stream` (each with wait_event(event)),
`event()` (a new event with record(stream) and synchronize()), `pinned(shape, dtype)` (a host
numpy array), `device(shape, dtype)` (a device array with set(host, stream=stream): the copy
queued on `stream`).
"""
from __future__ import annotations

import numpy as np

SLOTS = 2  # a double buffer: the copy of batch n overlaps step n-1


class Slot:
    """One batch's buffers in a ring, with the two events that order their reuse."""

    def __init__(self, engine, layout):
        self.host = [engine.pinned(shape, dtype) for shape, dtype in layout]
        self.device = [engine.device(shape, dtype) for shape, dtype in layout]
        self.copied, self.released = engine.event(), engine.event()
        self.used = False  # whether a copy was ever queued from it (its events recorded)


class StagingRing:
    """stage(arrays) -> the arrays on the device, through a ring of pinned and device buffers.
    Callable as stage(batch, device) too: a Chainer converter. The arrays returned are the ring's
    buffers: valid for work queued on the compute stream before the next stage() call (a step;
    copy them to keep them longer)."""

    def __init__(self, engine, slots: int = SLOTS):
        if slots < 1:
            raise ValueError(f"staging needs at least one slot, got {slots}")
        self.engine, self.slots = engine, slots
        self.rings: dict[tuple, list[Slot]] = {}  # (shape, dtype) of each array -> its slots
        self.turn: dict[tuple, int] = {}  # the slot each ring fills next
        self.in_use: Slot | None = None  # the last staged slot, not yet released

    def info(self) -> str:
        return f"pinned ring of {self.slots}, copy stream"

    def stage(self, arrays) -> tuple:
        arrays = [np.asarray(a) for a in arrays]
        layout = tuple((a.shape, a.dtype.str) for a in arrays)
        engine = self.engine
        if self.in_use is not None:  # the previous batch's step is queued whole: it may go
            self.in_use.released.record(engine.compute_stream)
            self.in_use = None
        ring = self.rings.setdefault(layout, [])
        turn = self.turn.get(layout, 0)
        if len(ring) <= turn:
            ring.append(Slot(engine, layout))
            # A new device buffer may be a block the allocator took back from the compute stream
            # while kernels queued there still read it: the first copy waits for them too.
            ring[turn].released.record(engine.compute_stream)
        slot = ring[turn]
        self.turn[layout] = (turn + 1) % self.slots
        if slot.used:
            slot.copied.synchronize()  # its last copy read the pinned buffers: done before overwriting
        engine.copy_stream.wait_event(slot.released)  # the step that read its device buffers ran
        for host, array in zip(slot.host, arrays):
            np.copyto(host, array, casting="no")
        for dev, host in zip(slot.device, slot.host):
            dev.set(host, stream=engine.copy_stream)
        slot.copied.record(engine.copy_stream)
        slot.used = True
        engine.compute_stream.wait_event(slot.copied)
        self.in_use = slot
        return tuple(slot.device)

    def __call__(self, batch, device=None) -> tuple:
        return self.stage(batch)
