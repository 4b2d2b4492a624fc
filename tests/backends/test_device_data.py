"""The data path to the device: every batch and z reaches the backend's device as the same bytes,
in the spec's order (common/data/noise.py), whatever the staging (pinned memory and asynchronous
copies on CUDA: backends/pytorch/backend.py `tensor`; a pinned ring and a copy stream for Chainer
on CuPy: backends/staging.py, run over numpy buffers on the CPU). Marked `gpu`: on the CPU it checks the
order and the values; `python -m benchmarks.gpu_check` runs it on the GPU, where the staging is
exercised and several copies are in flight before the first is read back."""
from __future__ import annotations

import contextlib

import numpy as np
import pytest

from common.data import noise
from tests.support.backends import require_backend, shared_init_backend

pytestmark = pytest.mark.gpu


def test_batches_reach_the_device_unchanged_and_in_order():
    require_backend("pytorch")
    backend = shared_init_backend("pytorch", "mnist32")
    images = np.tanh(np.random.default_rng(0).standard_normal((40, 1, 32, 32))).astype(np.float32)
    plan = noise.BatchPlan(len(images), 8, seed=5)
    host = list(noise.iterate_batches(images, plan, 100, 0, 12))  # over one epoch boundary
    on_device = [(backend.tensor(real), backend.tensor(z)) for real, z in host]  # all queued first
    for (real, z), (real_t, z_t) in zip(host, on_device):
        assert real_t.device.type == backend.device.type
        np.testing.assert_array_equal(real_t.cpu().numpy(), real)
        np.testing.assert_array_equal(z_t.cpu().numpy(), z)
    # the order itself: iteration i's z is the spec's draw for i, batch i the plan's rows
    np.testing.assert_array_equal(host[7][1], noise.iteration_noise(5, 7, 8, 100))
    np.testing.assert_array_equal(host[7][0], images[noise.BatchPlan(40, 8, seed=5).indices(7)])


def test_jax_batches_staged_one_ahead_train_exactly_as_unstaged():
    """JAX on a GPU stages batch i+1 on the device while step i runs (backends/jax/backend.py
    train): the same iterations in order with the same losses as the harness's numpy batches
    handed over one at a time, here on the test device (on a GPU: copies in flight)."""
    require_backend("jax")

    def stage(backend, staged):
        assert backend.stage_batches == (backend.on_gpu and not backend.replicas)
        backend.stage_batches = staged  # on the CPU too: the loop is the same

    _assert_staging_changes_no_step("jax", stage)


def _assert_staging_changes_no_step(name, stage, context=contextlib.nullcontext):
    """Iterations 3-14 of backend `name` trained without and with staging (stage(backend, staged)
    switches it) give the same iterations, in order, with the same losses."""
    images = np.tanh(np.random.default_rng(0).standard_normal((40, 1, 32, 32))).astype(np.float32)
    plan = noise.BatchPlan(len(images), 8, seed=5)
    runs = {}
    for staged in (False, True):
        backend = shared_init_backend(name, "mnist32")
        stage(backend, staged)
        steps = []
        with context():
            backend.train(noise.iterate_batches(images, plan, 100, 3, 15), 3,
                          lambda i, d, g, s: steps.append((i, d, g)))
        runs[staged] = steps
    assert [i for i, _, _ in runs[True]] == list(range(3, 15))
    assert runs[True] == runs[False]


def _chainer_stager(backend):
    """The Chainer backend's stager: CuPy's on a GPU; on the CPU, where train() uses none, the
    same ring over numpy buffers (tests.support.fake_device.py HostEngine), so the path runs here."""
    from backends.staging import StagingRing
    from tests.support.fake_device import HostEngine
    assert (backend.stager is not None) == backend.on_gpu  # the CPU path is device.send, unchanged
    return backend.stager or StagingRing(HostEngine())


def test_chainer_staged_batches_reach_the_device_unchanged_and_in_order():
    """Batches of two shapes through the Chainer backend's stager: each staged batch is copied
    on the device (queued on the compute stream, as a step would read it) before the next is
    staged, nothing is read back until the end, so on a GPU copies and slot reuse are in flight."""
    require_backend("chainer")
    from backends.chainer import runtime
    backend = shared_init_backend("chainer", "mnist32")
    stager = _chainer_stager(backend)
    images = np.tanh(np.random.default_rng(0).standard_normal((40, 1, 32, 32))).astype(np.float32)
    host = []
    for size, first, count in ((8, 0, 6), (5, 0, 4), (8, 6, 5)):  # a shape change, then back
        host += noise.iterate_batches(images, noise.BatchPlan(len(images), size, seed=5), 100, first,
                                      first + count)
    kept = [tuple(a.copy() for a in stager((real, z), backend.device)) for real, z in host]
    for (real, z), (real_d, z_d) in zip(host, kept):
        assert backend.device.xp is runtime.chainer.backend.get_array_module(real_d)
        np.testing.assert_array_equal(runtime.cuda.to_cpu(real_d), real)
        np.testing.assert_array_equal(runtime.cuda.to_cpu(z_d), z)


def test_chainer_staged_train_matches_device_send():
    """train() with the stager as the updater's converter gives the same iterations and losses as
    with device.send. Exact: the same inputs and kernels; cudnn_deterministic keeps cuDNN (where
    CuPy has it) from picking a nondeterministic algorithm in one run and not the other."""
    require_backend("chainer")
    from backends.chainer import runtime

    def stage(backend, staged):
        backend.stager = _chainer_stager(backend) if staged else None

    _assert_staging_changes_no_step("chainer", stage,
                                    lambda: runtime.chainer.using_config("cudnn_deterministic", True))
