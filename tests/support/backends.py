"""Backends for tests: a backend whose framework is missing is skipped with the install command,
except under CI=true, where a missing framework is a failure (CI installs all of them)."""
from __future__ import annotations

import os

import pytest

import backends
from common import canonical
from common.spec import model_spec

IN_CI = os.environ.get("CI", "").lower() == "true"


def require_backend(name: str):
    reason = backends.unavailable_reason(name)
    if reason:
        if IN_CI:
            pytest.fail(f"CI=true: backend {name} cannot run: {reason}", pytrace=False)
        pytest.skip(reason)
    return backends.load(name)


def shared_init_backend(name: str, preset: str = "mnist32", seed: int = 0, **options):
    """A CPU backend `name` loaded with the shared initial weights of `seed`; options are
    BackendOptions fields (fast paths, threads)."""
    from backends.base import BackendOptions
    spec = model_spec(preset)
    backend = backends.load(name)(spec, BackendOptions(device="cpu", seed=seed, **options))
    backend.load_weights(canonical.draw_initial_weights(spec, seed))
    return backend
