"""Backends for tests: a backend whose framework is missing is skipped with the install command,
except under CI=true, where a missing framework is a failure (CI installs all of them); a backend
excluded by design (MXNet on numpy 2: backends.excluded_reason) is skipped with its reason even
there."""
from __future__ import annotations

import os

import pytest

import backends
from common import canonical
from common.spec import model_spec

IN_CI = os.environ.get("CI", "").lower() == "true"
# The device of the `gpu`-marked tests (the parity tests): cpu by default; `python -m
# benchmarks.gpu_check` sets gpu, so the same assertions run on the device.
DEVICE_ENV = "DCGAN_BENCH_TEST_DEVICE"
TEST_DEVICE = os.environ.get(DEVICE_ENV, "cpu")
# The backends the GPU check runs tests for (comma-separated; unset: all): the others skip.
BACKENDS_ENV = "DCGAN_BENCH_TEST_BACKENDS"


def require_backend(name: str):
    selected = os.environ.get(BACKENDS_ENV)
    if selected and name not in selected.split(","):
        pytest.skip(f"{BACKENDS_ENV}={selected}: not selected", allow_module_level=True)
    reason = backends.unavailable_reason(name)
    if reason:
        if IN_CI and not backends.excluded_reason(name):  # excluded by design: a skip, even in CI
            pytest.fail(f"CI=true: backend {name} cannot run: {reason}", pytrace=False)
        pytest.skip(reason, allow_module_level=True)  # also at a test module's top
    backend = backends.load(name)
    if TEST_DEVICE == "gpu":  # only the backends that see the GPU run there, CI or not
        gpu_reason = backend.runtime.gpu_unavailable_reason()
        if gpu_reason:
            pytest.skip(f"{DEVICE_ENV}=gpu: {gpu_reason}", allow_module_level=True)
    return backend


def shared_init_backend(name: str, preset: str = "mnist32", seed: int = 0, **options):
    """A backend `name` on TEST_DEVICE (the CPU unless DCGAN_BENCH_TEST_DEVICE says gpu), loaded
    with the shared initial weights of `seed`; options are BackendOptions fields (fast paths,
    threads)."""
    from backends.base import BackendOptions
    spec = model_spec(preset)
    options.setdefault("device", TEST_DEVICE)
    backend = backends.load(name)(spec, BackendOptions(seed=seed, **options))
    backend.load_weights(canonical.draw_initial_weights(spec, seed))
    return backend
