"""PyTorch-specific checks: what the shared parity tests cannot see from outside."""
from __future__ import annotations

import numpy as np
import pytest

from common import weights
from common.spec import model_spec
from tests import oracle
from tests.conftest import require_backend

require_backend("pytorch")
import torch  # noqa: E402

from backends.base import BackendOptions, BackendUnavailable  # noqa: E402
from backends.pytorch.backend import Backend  # noqa: E402


def _backend(preset="mnist32", **options):
    spec = model_spec(preset)
    b = Backend(spec, BackendOptions(device="cpu", **options))
    b.load_weights(weights.draw_initial_weights(spec, 0))
    return b


@pytest.mark.parametrize("preset", ["mnist32", "dcgan64"])
def test_every_layer_output_shape(preset):
    spec = model_spec(preset)
    b = _backend(preset)
    shapes = {}

    def record(key):
        def hook(module, inputs, output):  # returns None: a returned value would replace output
            shapes[key] = tuple(output.shape[1:])
        return hook

    for net in (b.G, b.D):
        for name, module in net.net.named_children():
            module.register_forward_hook(record((net is b.G, name)))
    b.generate(np.zeros((2, spec.preset.nz), np.float32))
    b.discriminate(np.zeros((2, spec.preset.channels, spec.preset.image_size,
                             spec.preset.image_size), np.float32))
    for layer in spec.layers:
        key = (layer.net == "G", f"{layer.kind}{layer.index}")
        assert shapes[key] == layer.out_shape, layer.name
        if layer.batchnorm:
            assert shapes[(layer.net == "G", f"bn{layer.index}")] == layer.out_shape


def test_parameter_count_per_layer_equals_spec():
    spec = model_spec("dcgan64")
    b = _backend("dcgan64")
    torch_count = sum(p.numel() for p in b.G.parameters()) + sum(p.numel() for p in b.D.parameters())
    assert torch_count == spec.parameter_count()
    for layer in spec.layers:
        net = b.G if layer.net == "G" else b.D
        conv = getattr(net.net, f"{layer.kind}{layer.index}")
        assert tuple(conv.weight.shape) == layer.weight_shape
        assert conv.bias is None  # the spec has no biases


def test_adam_matches_numpy_model_of_its_convention():
    """torch.optim.Adam given the oracle's gradients, three steps, against the numpy model of
    PyTorch's convention (eps added to the bias-corrected sqrt(v)). Both compute the same
    float32-representable quantities; the remaining difference is float32 rounding of the update
    (~lr·u) relative to |p|: 1e-6 relative is ample and still catches a wrong eps placement
    (which changes near-zero-gradient updates by O(1))."""
    spec = model_spec("mnist32")
    b = _backend()
    rng = np.random.default_rng(0)
    params = dict(b.D.named_parameters())
    ref = {k: v.detach().double().numpy().copy() for k, v in params.items()}
    m = {k: None for k in params}
    v = {k: None for k in params}
    for t in (1, 2, 3):
        grads = {k: rng.standard_normal(p.shape) * 10.0 ** rng.integers(-9, -2) for k, p in params.items()}
        for k, p in params.items():
            p.grad = torch.from_numpy(grads[k].astype(np.float32))
            ref[k], m[k], v[k] = oracle.adam_update(ref[k], grads[k].astype(np.float32), m[k], v[k],
                                                    t, spec.adam, "pytorch")
        b.opt_D.step()
        for k, p in params.items():
            got = p.detach().double().numpy()
            assert np.abs(got - ref[k]).max() <= 1e-6 * max(np.abs(ref[k]).max(), spec.adam.lr), (t, k)


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


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error path")
def test_gpu_requested_without_cuda_is_a_clear_error():
    with pytest.raises(BackendUnavailable, match="--device gpu"):
        Backend(model_spec("mnist32"), BackendOptions(device="gpu"))


def test_auto_device_on_this_machine():
    b = _backend()
    assert b.device_info()["device"] == ("gpu" if torch.cuda.is_available() else "cpu")
    assert b.peak_memory()["bytes"] > 0


def test_own_init_follows_the_spec_without_shared_weights():
    """--no-shared-init: torch draws the spec's distributions itself (seeded, so repeatable).
    Bounds are 6 standard errors of the sample statistics for the smallest tensor tested."""
    spec = model_spec("mnist32")
    a = Backend(spec, BackendOptions(device="cpu", seed=5)).export_weights()
    b = Backend(spec, BackendOptions(device="cpu", seed=5)).export_weights()
    weights.validate(a, spec)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    w = a["D.conv1.weight"]  # 131072 draws of N(0, 0.02)
    assert abs(w.mean()) < 6 * 0.02 / np.sqrt(w.size)
    assert abs(w.std() - 0.02) < 6 * 0.02 / np.sqrt(2 * w.size)
    gamma = a["G.bn0.gamma"]  # 256 draws of N(1, 0.02)
    assert abs(gamma.mean() - 1.0) < 6 * 0.02 / np.sqrt(gamma.size)
    assert np.all(a["G.bn0.beta"] == 0) and np.all(a["G.bn0.running_var"] == 1)
