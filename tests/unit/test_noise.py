"""Tests for common.data.noise: latent noise and data order as pure functions of (seed, index)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from common.data import noise
from common.data.noise import BatchPlan, fixed_noise, iteration_noise, iterate_batches

NZ = 100


# ----- iteration noise -----
def test_noise_shape_and_dtype():
    z = iteration_noise(0, 0, 64, NZ)
    assert z.shape == (64, NZ)
    assert z.dtype == np.float32


def test_noise_is_standard_normal():
    z = np.concatenate([iteration_noise(7, i, 64, NZ) for i in range(50)]).astype(np.float64)
    n = z.size  # 320,000 draws: 6 standard errors on the mean and std
    assert abs(z.mean()) < 6 / math.sqrt(n)
    assert abs(z.std() - 1.0) < 6 / math.sqrt(2 * n)
    assert np.all(np.isfinite(z))


def test_noise_for_iteration_depends_only_on_seed_and_iteration():
    forward = {i: iteration_noise(3, i, 16, NZ) for i in range(20)}
    backward = {i: iteration_noise(3, i, 16, NZ) for i in reversed(range(20))}
    resumed = {i: iteration_noise(3, i, 16, NZ) for i in range(12, 20)}  # a run resumed at 12
    for i in range(20):
        assert forward[i].tobytes() == backward[i].tobytes()
    for i in range(12, 20):
        assert resumed[i].tobytes() == forward[i].tobytes()


def test_noise_differs_between_iterations():
    zs = [iteration_noise(0, i, 8, NZ).tobytes() for i in range(50)]
    assert len(set(zs)) == 50


def test_noise_differs_between_seeds():
    assert not np.array_equal(iteration_noise(0, 5, 8, NZ), iteration_noise(1, 5, 8, NZ))


def test_noise_is_not_a_shifted_stream():
    # Catches z_i taken as a window of one long stream (seed only): iteration i+1 would then
    # start where iteration i ended, or repeat the same rows shifted.
    a, b = iteration_noise(0, 0, 8, NZ), iteration_noise(0, 1, 8, NZ)
    assert not np.isin(b.ravel()[:10], a.ravel()).any()


def test_fixed_noise_shape_determinism_and_independence():
    f = fixed_noise(0, 64, NZ)
    assert f.shape == (64, NZ) and f.dtype == np.float32
    assert f.tobytes() == fixed_noise(0, 64, NZ).tobytes()
    assert not np.array_equal(f, fixed_noise(1, 64, NZ))
    # Not the noise of any iteration: sample grids don't reuse a training z.
    for i in range(5):
        assert not np.isin(iteration_noise(0, i, 64, NZ).ravel()[:20], f.ravel()).any()


def test_streams_of_one_seed_are_independent():
    # Data order, noise and weights each get their own stream: drawing from one never moves another.
    before = noise.epoch_permutation(0, 0, 1000)
    noise.weights_rng(0).standard_normal(1000)
    iteration_noise(0, 0, 64, NZ)
    assert np.array_equal(noise.epoch_permutation(0, 0, 1000), before)
    w = noise.weights_rng(0).standard_normal(64 * NZ).astype(np.float32)
    assert not np.isin(w[:20], iteration_noise(0, 0, 64, NZ)).any()


# ----- BatchPlan -----
def test_partial_last_batch_is_dropped():
    plan = BatchPlan(10, 3, seed=0)
    assert plan.batches_per_epoch == 3  # 9 of 10 images; the short batch of 1 is never used
    for i in range(12):
        assert len(plan.indices(i)) == 3


@pytest.mark.parametrize("n, batch", [(10, 3), (64, 8), (100, 7), (5, 5)])
def test_each_epoch_is_a_permutation(n, batch):
    plan = BatchPlan(n, batch, seed=1)
    k = plan.batches_per_epoch
    for epoch in range(3):
        idx = np.concatenate([plan.indices(epoch * k + j) for j in range(k)])
        assert len(idx) == k * batch
        assert len(np.unique(idx)) == k * batch  # every image at most once per epoch
        assert idx.min() >= 0 and idx.max() < n


def test_epochs_are_shuffled_differently():
    plan = BatchPlan(100, 10, seed=0)
    k = plan.batches_per_epoch
    epochs = [np.concatenate([plan.indices(e * k + j) for j in range(k)]) for e in range(3)]
    assert not np.array_equal(epochs[0], epochs[1])
    assert not np.array_equal(epochs[1], epochs[2])
    assert not np.array_equal(epochs[0], np.arange(100))  # shuffled at all


def test_plan_is_deterministic_per_seed_and_differs_across_seeds():
    a, b, c = BatchPlan(50, 5, 0), BatchPlan(50, 5, 0), BatchPlan(50, 5, 1)
    assert all(np.array_equal(a.indices(i), b.indices(i)) for i in range(25))
    assert not all(np.array_equal(a.indices(i), c.indices(i)) for i in range(10))


def test_indices_do_not_depend_on_query_order():
    # The per-epoch cache must not leak: jumping back and forth between epochs gives the same batches.
    plan = BatchPlan(20, 4, 0)
    forward = [plan.indices(i).copy() for i in range(15)]
    jumpy = BatchPlan(20, 4, 0)
    for i in [14, 0, 7, 3, 12, 1, 9]:
        assert np.array_equal(jumpy.indices(i), forward[i]), i


@pytest.mark.parametrize("start", [0, 1, 2, 3, 5, 7])
def test_resume_yields_the_tail_of_the_full_run(start):
    images = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1)
    full = list(iterate_batches(images, BatchPlan(10, 3, 4), NZ, 0, 9))
    resumed = list(iterate_batches(images, BatchPlan(10, 3, 4), NZ, start, 9))
    assert len(resumed) == 9 - start
    for (x_full, z_full), (x_res, z_res) in zip(full[start:], resumed):
        assert x_res.tobytes() == x_full.tobytes()
        assert z_res.tobytes() == z_full.tobytes()


def test_iterate_batches_returns_the_planned_images_and_noise():
    images = np.arange(12, dtype=np.float32).reshape(12, 1, 1, 1) / 12
    plan = BatchPlan(12, 4, seed=2)
    got = list(iterate_batches(images, plan, NZ, 0, 5))
    assert len(got) == 5
    for i, (x, z) in enumerate(got):
        assert x.shape == (4, 1, 1, 1) and x.dtype == np.float32
        assert np.array_equal(x, images[plan.indices(i)])
        assert z.tobytes() == iteration_noise(2, i, 4, NZ).tobytes()


def test_batch_larger_than_dataset_names_the_flag():
    with pytest.raises(ValueError, match="--batch-size") as info:
        BatchPlan(10, 11, seed=0)
    assert "10" in str(info.value) and "11" in str(info.value)


def test_batch_equal_to_dataset_is_allowed():
    plan = BatchPlan(10, 10, seed=0)
    assert plan.batches_per_epoch == 1
    assert sorted(plan.indices(0)) == list(range(10))


@pytest.mark.parametrize("batch", [0, -1])
def test_non_positive_batch_is_refused(batch):
    with pytest.raises(ValueError, match="positive"):
        BatchPlan(10, batch, seed=0)
