"""Shared fixtures (helpers live in tests/support/). A backend whose framework is missing is
skipped with the install command, except under CI=true, where it is a failure."""
from __future__ import annotations

import functools

import numpy as np
import pytest

import backends
from common.spec import model_spec
from tests.support.backends import require_backend, shared_init_backend
from tests.support.processes import offline

pytest_plugins = ["tests.support.loopback"]  # loopback servers and the data-isolation fixture


@pytest.fixture(params=backends.NAMES)
def backend_name(request) -> str:
    """Each registered backend, by name (readable test ids: test_x[pytorch])."""
    require_backend(request.param)
    return request.param


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


@pytest.fixture
def offline_env(tmp_path):
    """Environment for run_all.py with no network and a private cache."""
    return offline(tmp_path)
