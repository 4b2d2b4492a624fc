"""TF32 proven off: on a CUDA GPU, PyTorch's forward with TF32 switched on must exceed the parity
bound that it meets with TF32 off (what runtime.select_device sets), so the parity tests on the GPU
could tell the difference and their pass means full float32.

TF32 rounds the inputs of every convolution to a 10-bit mantissa (relative error ~5e-4), far
above the float32 accumulation error that FORWARD_ATOL (1e-5) is derived from
(tests/support/tolerances.py); dcgan64's D sums 8192 such products per output. Marked `gpu`:
`python -m benchmarks.gpu_check` runs it with DCGAN_BENCH_TEST_DEVICE=gpu; on a CPU it skips
(TF32 exists only on CUDA GPUs of the Ampere generation and newer).
"""
from __future__ import annotations

import numpy as np
import pytest

from common import canonical
from common.spec import model_spec
from tests.support import oracle
from tests.support.backends import DEVICE_ENV, TEST_DEVICE, require_backend, shared_init_backend
from tests.support.tolerances import FORWARD_ATOL

pytestmark = pytest.mark.gpu


def _forward_error(backend, spec, z, real) -> float:
    """The larger of G's and D's train-mode error against the oracle, relative to max(1, |ref|)."""
    w = canonical.draw_initial_weights(spec, 0)
    errors = []
    for net, x, run in (("G", z, backend.generate), ("D", real, backend.discriminate)):
        ref, _ = oracle.forward(spec, w, net, x, train=True)
        errors.append(float(np.abs(run(x, train=True) - ref).max() / max(1.0, np.abs(ref).max())))
    return max(errors)


def test_tf32_off_meets_the_forward_bound_and_tf32_on_exceeds_it(batch):
    require_backend("pytorch")
    if TEST_DEVICE != "gpu":
        pytest.skip(f"TF32 exists only on CUDA GPUs (Ampere+); {DEVICE_ENV}=gpu runs this on one")
    import torch
    spec = model_spec("dcgan64")
    backend = shared_init_backend("pytorch", "dcgan64")
    # What select_device set for the spec run: the switches this test proves effective.
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    real, z = batch("dcgan64", 16)
    off = _forward_error(backend, spec, z, real)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        on = _forward_error(backend, spec, z, real)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    assert off <= FORWARD_ATOL, f"TF32 off: {off:.2e} over the bound {FORWARD_ATOL:.0e}"
    assert on > FORWARD_ATOL, (f"TF32 on: {on:.2e} within the bound {FORWARD_ATOL:.0e}: the parity "
                               "tests could not tell TF32 from float32 here")
