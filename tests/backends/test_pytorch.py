"""PyTorch-specific checks: what the shared parity tests cannot see from outside."""
from __future__ import annotations

import numpy as np
import pytest

from common.spec import model_spec
from tests.support.backends import require_backend, shared_init_backend

require_backend("pytorch")
import torch  # noqa: E402

from backends.base import BackendOptions, BackendUnavailable  # noqa: E402
from backends.pytorch.backend import Backend  # noqa: E402


def _backend(preset="mnist32", **options):
    return shared_init_backend("pytorch", preset, **options)


def test_fast_paths_run_and_stay_close():
    """channels_last is the same arithmetic in another memory order (float32 parity bound);
    bf16 autocast has an 8-bit mantissa (u = 2^-9 ≈ 2e-3 per op), so only closeness is asserted."""
    spec = model_spec("mnist32")
    rng = np.random.default_rng(0)
    real = np.tanh(rng.standard_normal((8, 1, 32, 32))).astype(np.float32)
    z = rng.standard_normal((8, spec.preset.nz)).astype(np.float32)
    ref = _backend().train_step(real, z)
    cl = _backend(channels_last=True).train_step(real, z)
    bf = _backend(bf16=True).train_step(real, z)
    assert cl == pytest.approx(ref, abs=1e-5)
    assert bf == pytest.approx(ref, abs=0.1)
    assert np.all(np.isfinite(bf))


@pytest.mark.slow
def test_compile_option_compiles_the_step_and_stays_close():
    """Inductor fuses BN's reductions into other float32 summation orders. loss_d is a forward
    at the shared weights (the 1e-5 forward parity bound); loss_g comes after D's Adam step,
    where a near-zero gradient that changes sign moves a weight by 2·lr (SPEC.md): bounded at
    1e-4, as TensorFlow's XLA path is (tests/backends/test_tensorflow.py)."""
    spec = model_spec("mnist32")
    rng = np.random.default_rng(0)
    real = np.tanh(rng.standard_normal((8, 1, 32, 32))).astype(np.float32)
    z = rng.standard_normal((8, spec.preset.nz)).astype(np.float32)
    ref = _backend().train_step(real, z)
    b = _backend(compile=True)
    loss_d, loss_g = b.train_step(real, z)
    assert b.device_info()["fast_paths"]["torch_compile"]
    assert isinstance(b.train_D, torch._dynamo.eval_frame.OptimizedModule)
    assert loss_d == pytest.approx(ref[0], abs=1e-5)
    assert loss_g == pytest.approx(ref[1], abs=1e-4)
    # evaluation stays eager and exact
    np.testing.assert_array_equal(b.generate(z), b.G.eval()(torch.from_numpy(z)).detach().numpy())


@pytest.mark.parametrize("mode,expected", [("default", None), ("max-autotune", "max-autotune")])
def test_compile_mode_reaches_torch_compile(monkeypatch, mode, expected):
    """--compile-mode is torch.compile's mode for the three training passes (recorded, not
    compiled here: the slow test above compiles); CUDA graphs' per-step marker only on CUDA."""
    calls = []
    monkeypatch.setattr(torch, "compile", lambda module, **kw: calls.append(kw) or module)
    b = _backend(compile=True, compile_mode=mode)
    assert calls == [{"mode": expected}] * 3
    assert b.device_info()["fast_paths"]["torch_compile_mode"] == mode
    assert b.cuda_graphs is False  # the CPU: no CUDA graphs to mark steps for
    assert "torch_compile_mode" not in _backend().device_info()["fast_paths"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error path")
def test_gpu_requested_without_cuda_is_a_clear_error():
    with pytest.raises(BackendUnavailable, match="--device gpu"):
        Backend(model_spec("mnist32"), BackendOptions(device="gpu"))


def test_auto_device_on_this_machine():
    b = _backend()
    assert b.device_info()["device"] == ("gpu" if torch.cuda.is_available() else "cpu")
    assert b.peak_memory()["bytes"] > 0
