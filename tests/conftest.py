"""Shared fixtures. A backend whose framework is missing is skipped with the install command,
except under CI=true, where a missing framework is a failure (CI installs all of them)."""
from __future__ import annotations

import functools
import os

import numpy as np
import pytest

import backends
from common import weights
from common.spec import model_spec

pytest_plugins = ["tests.loopback"]  # loopback servers and the data-isolation fixture

IN_CI = os.environ.get("CI", "").lower() == "true"
IMPLEMENTED = [n for n, r in backends.REGISTRY.items() if r.implemented]


def require_backend(name: str):
    reason = backends.unavailable_reason(name)
    if reason:
        if IN_CI:
            pytest.fail(f"CI=true: backend {name} cannot run: {reason}", pytrace=False)
        pytest.skip(reason)
    return backends.load(name)


@pytest.fixture(params=IMPLEMENTED)
def backend_name(request) -> str:
    """Each implemented backend, by name (readable test ids: test_x[pytorch])."""
    require_backend(request.param)
    return request.param


def shared_init_backend(name: str, preset: str = "mnist32", seed: int = 0, **options):
    """A CPU backend `name` loaded with the shared initial weights of `seed`; options are
    BackendOptions fields (fast paths, threads)."""
    from backends.base import BackendOptions
    spec = model_spec(preset)
    backend = backends.load(name)(spec, BackendOptions(device="cpu", seed=seed, **options))
    backend.load_weights(weights.draw_initial_weights(spec, seed))
    return backend


@pytest.fixture
def make_backend(backend_name):
    """make_backend(preset, seed=0) -> a CPU backend loaded with the shared initial weights."""
    return functools.partial(shared_init_backend, backend_name)


@pytest.fixture
def batch():
    """batch(preset, n, seed) -> (real, z): float32 images in [-1, 1] and noise."""
    def make(preset: str = "mnist32", n: int = 8, seed: int = 1):
        p = model_spec(preset).preset
        rng = np.random.default_rng(seed)
        real = np.tanh(rng.standard_normal((n, p.channels, p.image_size, p.image_size))).astype(np.float32)
        z = rng.standard_normal((n, p.nz)).astype(np.float32)
        return real, z
    return make
