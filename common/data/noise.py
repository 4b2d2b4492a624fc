"""Data order and latent noise, owned by the harness and identical for every backend (SPEC.md).

Every stream is a pure function of (seed, stream id, index), so iteration i sees the same batch and
the same z in a short run, a longer run and a resumed run, whatever the backend.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

# Stream ids keep the streams independent of each other for one seed.
_ORDER, _NOISE, _FIXED, _WEIGHTS = 1, 2, 3, 4


def rng(seed: int, stream: int, *index: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, *index])


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    return rng(seed, _ORDER, epoch).permutation(n)


def iteration_noise(seed: int, iteration: int, batch_size: int, nz: int) -> np.ndarray:
    """z ~ N(0, 1), shape (batch, nz) float32; the backend reshapes to (N, nz, 1, 1) itself."""
    return rng(seed, _NOISE, iteration).standard_normal((batch_size, nz), dtype=np.float32)


def fixed_noise(seed: int, count: int, nz: int) -> np.ndarray:
    """The z of every sample grid: the same for all backends of a run."""
    return rng(seed, _FIXED).standard_normal((count, nz), dtype=np.float32)


def weights_rng(seed: int) -> np.random.Generator:
    return rng(seed, _WEIGHTS)


class BatchPlan:
    """Which images form batch i: one seeded permutation per epoch, last partial batch dropped
    (a short batch would change the BN statistics)."""

    def __init__(self, n_images: int, batch_size: int, seed: int):
        if batch_size <= 0:
            raise ValueError(f"batch size must be positive, got {batch_size}")
        if batch_size > n_images:
            raise ValueError(f"batch size {batch_size} is larger than the dataset "
                             f"({n_images} images); pass a smaller --batch-size")
        self.n_images, self.batch_size, self.seed = n_images, batch_size, seed
        self._epoch, self._perm = -1, None

    @property
    def batches_per_epoch(self) -> int:
        return self.n_images // self.batch_size

    def indices(self, iteration: int) -> np.ndarray:
        epoch, pos = divmod(iteration, self.batches_per_epoch)
        if epoch != self._epoch:  # one permutation per epoch, drawn once
            self._epoch, self._perm = epoch, epoch_permutation(self.seed, epoch, self.n_images)
        return self._perm[pos * self.batch_size:(pos + 1) * self.batch_size]


def iterate_batches(images: np.ndarray, plan: BatchPlan, nz: int, start: int, stop: int
                    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(real, z) for iterations start..stop-1: NCHW float32 in [-1, 1] and (N, nz) float32."""
    for i in range(start, stop):
        yield images[plan.indices(i)], iteration_noise(plan.seed, i, plan.batch_size, nz)
