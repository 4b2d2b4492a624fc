"""TF32 proven off: on a CUDA GPU, each backend's dcgan64 forward with its reduced-precision float32
math switched on must exceed the parity bound that it meets as the spec run sets it (TF32 off), so
the parity tests on the GPU could tell the difference and their pass means full float32.

The switches (tests/support/tf32.py): PyTorch's allow_tf32 flags (its runtime.select_device sets
them off), JAX's default matmul/convolution precision (the backend sets 'highest'; JAX's own
default is TF32 on Ampere+), TensorFlow's enable_tensor_float_32_execution (the backend turns it
off), and for Chainer CuPy's CUPY_TF32 plus cuDNN's default math (the backend's package sets
NVIDIA_TF32_OVERRIDE=0). Every measurement runs in a process of its own (why: tests/support/
tf32.py; one for both halves where the switch works at run time); the float64 oracle's
reference is computed once, here.

TF32 rounds the inputs of every convolution to a 10-bit mantissa (relative error ~5e-4), far
above the float32 accumulation error that FORWARD_ATOL (1e-5) is derived from
(tests/support/tolerances.py); dcgan64's D sums 8192 such products per output. Marked `gpu`:
`python -m benchmarks.gpu_check` runs it with DCGAN_BENCH_TEST_DEVICE=gpu; on a CPU it skips
(TF32 exists only on CUDA GPUs of the Ampere generation and newer).
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

from common import canonical
from common.spec import model_spec
from tests.support import oracle, tf32
from tests.support.backends import DEVICE_ENV, TEST_DEVICE, require_backend
from tests.support.tolerances import FORWARD_ATOL

pytestmark = pytest.mark.gpu
BACKENDS = ("pytorch", "jax", "tensorflow", "chainer")  # those with a switch; MXNet: no GPU build to test


@functools.lru_cache(maxsize=1)
def _reference(n: int = 16):
    """(z, real, {net: the float64 oracle's train-mode output}) for dcgan64, seed 0's weights."""
    spec = model_spec("dcgan64")
    rng = np.random.default_rng(1)
    real = np.tanh(rng.standard_normal((n, 3, 64, 64))).astype(np.float32)
    z = rng.standard_normal((n, spec.preset.nz)).astype(np.float32)
    w = canonical.draw_initial_weights(spec, 0)
    return z, real, {net: oracle.forward(spec, w, net, x, train=True)[0] for net, x in (("G", z), ("D", real))}


def _forward_errors(name: str, tmp_path) -> dict[str, float]:
    """{'off': error, 'on': error}: the larger of G's and D's error against the oracle, relative
    to max(1, |ref|), with reduced precision off (as the spec run sets it) and on, measured in
    fresh processes (tf32.runs)."""
    z, real, ref = _reference()
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, z=z, real=real)
    errors = {}
    for modes in tf32.runs(name):
        output = tmp_path / f"{name}-{modes.replace(',', '-')}.npz"
        proc = tf32.run(name, modes, inputs, output)
        assert proc.returncode == 0, f"{name} TF32 {modes}: {proc.stderr[-3000:]}"
        with np.load(output) as out:
            for mode in modes.split(","):
                errors[mode] = max(float(np.abs(out[f"{net}_{mode}"] - ref[net]).max()
                                         / max(1.0, np.abs(ref[net]).max())) for net in ref)
    return errors


@pytest.mark.parametrize("name", BACKENDS)
def test_tf32_off_meets_the_forward_bound_and_tf32_on_exceeds_it(name, tmp_path):
    require_backend(name)  # on the GPU: skipped where the backend does not see it
    if TEST_DEVICE != "gpu":
        pytest.skip(f"TF32 exists only on CUDA GPUs (Ampere+); {DEVICE_ENV}=gpu runs this on one")
    errors = _forward_errors(name, tmp_path)
    off, on = errors["off"], errors["on"]
    assert off <= FORWARD_ATOL, f"{name}, TF32 off: {off:.2e} over the bound {FORWARD_ATOL:.0e}"
    assert on > FORWARD_ATOL, (f"{name}, TF32 on: {on:.2e} within the bound {FORWARD_ATOL:.0e}: the "
                               "parity tests could not tell TF32 from float32 here")
