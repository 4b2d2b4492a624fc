"""The data path to the device: every batch and z reaches the backend's device as the same bytes,
in the spec's order (common/data/noise.py), whatever the staging (pinned memory and asynchronous
copies on CUDA: backends/pytorch/backend.py `tensor`). Marked `gpu`: on the CPU it checks the
order and the values; `python -m benchmarks.gpu_check` runs it on the GPU, where the staging is
exercised and several copies are in flight before the first is read back."""
from __future__ import annotations

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
    images = np.tanh(np.random.default_rng(0).standard_normal((40, 1, 32, 32))).astype(np.float32)
    plan = noise.BatchPlan(len(images), 8, seed=5)
    runs = {}
    for staged in (False, True):
        backend = shared_init_backend("jax", "mnist32")
        assert backend.stage_batches == (backend.on_gpu and not backend.replicas)
        backend.stage_batches = staged  # on the CPU too: the loop is the same
        steps = []
        backend.train(noise.iterate_batches(images, plan, 100, 3, 15), 3,
                      lambda i, d, g, s: steps.append((i, d, g)))
        runs[staged] = steps
    assert [i for i, _, _ in runs[True]] == list(range(3, 15))
    assert runs[True] == runs[False]
