"""JAX-specific checks: what the shared parity tests cannot see from outside."""
from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from common.spec import model_spec
from tests.support.backends import require_backend, shared_init_backend
from tests.support.processes import last_json, run_python

require_backend("jax")
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402

from backends.base import BackendUnavailable  # noqa: E402
from backends.jax import models, runtime, training  # noqa: E402
from backends.jax.backend import Backend  # noqa: E402


def test_spec_values_replace_flax_defaults():
    spec = model_spec("mnist32")
    G, D = models.build(spec)
    bn = G.bn0
    assert (bn.momentum, bn.epsilon) == (spec.bn.decay, spec.bn.eps)  # Flax: 0.99, 1e-5
    assert bn.use_fast_variance is False  # two-pass variance, as every other framework
    for name, layer in models.layers({"G": G, "D": D}, spec):
        if not name.split(".")[1].startswith("bn"):
            assert layer.bias is None  # use_bias=False
    assert G.deconv1.transpose_kernel and G.deconv1.padding == ((2, 2), (2, 2))  # k-1-p
    assert D.conv1.padding == ((1, 1), (1, 1))
    assert Backend.running_var_unbiased is False and Backend.adam_convention == "pytorch"


def test_flax_batchnorm_running_variance_is_biased():
    """From flax/nnx/nn/normalization.py (ra_var takes _compute_stats' mean of squared
    deviations), checked: one train pass from var 1 with momentum m gives m + (1-m)·var_biased."""
    bn = nnx.BatchNorm(1, momentum=0.5, use_fast_variance=False, rngs=nnx.Rngs(0))
    x = jnp.array([1.0, 2.0, 4.0]).reshape(3, 1)
    bn(x, use_running_average=False)
    biased = float(np.var([1.0, 2.0, 4.0]))
    assert math.isclose(float(bn.var[...][0]), 0.5 + 0.5 * biased, rel_tol=1e-6)


def test_adam_step_is_the_spec_where_optaxs_float32_bias_correction_is_not():
    """At t=1 with a gradient far above eps the update is lr·sign(g) to float32 rounding. Optax's
    scale_by_adam forms 1 - 0.999 in float32 (6.4e-6 relative off after the sqrt): the backend's
    Adam re-forms the corrections (training.adam), so its step is within 1e-6 of lr."""
    spec = model_spec("mnist32").adam
    g = {"w": jnp.full((4,), 1e-3, jnp.float32)}
    tx = training.adam(None, spec)  # binds to no net
    ours, _ = tx.update(g, tx.init(g), g)
    raw = optax.chain(optax.scale_by_adam(spec.beta1, spec.beta2, spec.eps, eps_root=0.0),
                      optax.scale_by_learning_rate(spec.lr))
    theirs, _ = raw.update(g, raw.init(g), g)
    exact = -spec.lr * 1e-3 / (1e-3 + spec.eps)
    assert abs(float(ours["w"][0]) - exact) <= 1e-6 * spec.lr
    assert abs(float(theirs["w"][0]) - exact) > 3e-6 * spec.lr  # what the correction is for


@pytest.mark.slow
def test_bf16_compute_runs_and_stays_close():
    """Flax's compute dtype bfloat16 (8-bit mantissa, u = 2^-9 per op): only closeness asserted."""
    spec = model_spec("mnist32")
    rng = np.random.default_rng(0)
    real = np.tanh(rng.standard_normal((8, 1, 32, 32))).astype(np.float32)
    z = rng.standard_normal((8, spec.preset.nz)).astype(np.float32)
    ref = shared_init_backend("jax").train_step(real, z)
    bf = shared_init_backend("jax", bf16=True).train_step(real, z)
    assert np.allclose(bf, ref, atol=5e-2) and bf != ref


def test_gpu_request_without_a_gpu_is_a_clear_error():
    if runtime.gpu_unavailable_reason() is None:
        pytest.skip("a GPU is visible to JAX here")
    with pytest.raises(BackendUnavailable, match="--device gpu: JAX .* sees no GPU"):
        runtime.select_device("gpu")


def test_an_installed_cuda_plugin_that_does_not_start_is_named_with_its_error(monkeypatch):
    """Seen with jax 0.11.2 and jax-cuda13-plugin on a machine without a driver: JAX logs the
    plugin's exception (cuInit failed) and goes on with the CPU only; 'pip install .[gpu-jax]'
    would then be the wrong advice. The reason names the plugin and the last line of its error."""
    def devices(platform=None):
        if platform == "gpu":
            try:
                raise RuntimeError("Traceback line\noperation cuInit(0) failed: Unknown CUDA error 303")
            except RuntimeError:
                logging.getLogger("jax._src.xla_bridge").exception("Jax plugin configuration error")
            raise RuntimeError("Unknown backend: 'gpu' requested")
        return cpu

    cpu = jax.devices("cpu")
    monkeypatch.setattr(jax, "devices", devices)
    monkeypatch.setattr(runtime, "cuda_plugins", lambda: ["jax-cuda13-plugin 0.11.2"])
    reason = runtime.gpu_unavailable_reason()
    assert "jax-cuda13-plugin 0.11.2 did not start: operation cuInit(0) failed: Unknown CUDA error 303" in reason
    assert "pip install" not in reason
    monkeypatch.setattr(runtime, "cuda_plugins", lambda: [])
    assert "pip install '.[gpu-jax]'" in runtime.gpu_unavailable_reason()


@pytest.mark.slow
def test_threads_pin_the_cpus_xla_sizes_its_pool_by():
    """--threads 1 in a fresh process: the affinity set before XLA starts, recorded."""
    proc = run_python("""
        import json
        from tests.support.backends import shared_init_backend
        b = shared_init_backend("jax", threads=1)
        print(json.dumps(b.device_info()["threads"]))
    """, block=False, timeout=120)
    info = last_json(proc)
    assert info["xla_cpu_threads"] == 1 and "sched_setaffinity" in info["mechanism"]


@pytest.mark.slow
def test_onednn_path_sets_the_classic_runtime_and_keeps_float32_parity():
    """--onednn (XLA:CPU's classic runtime, oneDNN convolutions, the input-dilated convolutions
    by phases) in a fresh process, as XLA reads its flags once: the flag is recorded, and in
    float32 the train-mode forward of G and D and every gradient still meet the oracle's bounds
    (other kernels and another order of the same sums, not another computation)."""
    from common import canonical
    from tests.support import oracle
    from tests.support.tolerances import FORWARD_ATOL, GRAD_RTOL
    proc = run_python("""
        import json
        import numpy as np
        from tests.support.backends import shared_init_backend
        b = shared_init_backend("jax", onednn=True)
        rng = np.random.default_rng(3)
        z = rng.standard_normal((8, 100)).astype(np.float32)
        real = np.tanh(rng.standard_normal((8, 1, 32, 32))).astype(np.float32)
        info = b.device_info()
        grads = b.gradients(real, z)
        print(json.dumps({"flags": info["threads"]["XLA_FLAGS"], "paths": info["fast_paths"],
                          "g": b.generate(z, train=True).tolist(),
                          "d": b.discriminate(real, train=True).tolist(),
                          "losses": [grads["loss_d"], grads["loss_g"]],
                          "grads": {k: v.tolist() for k, v in grads["grads"].items()}}))
    """, block=False, timeout=240)
    out = last_json(proc)
    assert "--xla_cpu_use_thunk_runtime=false" in out["flags"].split()
    assert out["paths"]["classic_cpu_runtime_onednn"] is True
    spec = model_spec("mnist32")
    w = canonical.draw_initial_weights(spec, 0)
    rng = np.random.default_rng(3)
    z = rng.standard_normal((8, 100)).astype(np.float32)
    real = np.tanh(rng.standard_normal((8, 1, 32, 32))).astype(np.float32)
    for net, x in (("G", z), ("D", real)):
        ref, _ = oracle.forward(spec, w, net, x, train=True)
        got = np.asarray(out[net.lower()], dtype=np.float32).reshape(ref.shape)
        assert np.abs(got - ref).max() <= FORWARD_ATOL * max(1.0, np.abs(ref).max()), net
    # the bounds and kink slack of tests/backends/test_backend_parity.py's gradient check
    ref = oracle.gradients(spec, w, real, z)
    slack = oracle.kink_slack(spec, w, real, z, FORWARD_ATOL)
    assert np.abs(np.asarray(out["losses"]) - [ref["loss_d"], ref["loss_g"]]).max() <= FORWARD_ATOL
    assert set(out["grads"]) == set(ref["grads"])
    for key, g in ref["grads"].items():
        excess = np.abs(np.asarray(out["grads"][key]) - g) - slack[key]
        assert excess.max() <= GRAD_RTOL * np.abs(g).max(), key


@pytest.mark.parametrize("n,h,c_in,c_out", [(2, 4, 256, 128), (3, 8, 64, 1), (2, 16, 8, 3)])
def test_phases_compute_the_transposed_convolution_and_the_strided_input_gradient(n, h, c_in, c_out):
    """transpose_by_phases is conv_transpose (stride 2, pad 1, 4x4) with its sums in another
    order: equal to the forward bound (each output sums 4·c_in products, far under FORWARD_ATOL's
    8192). conv_by_phases' gradients are the plain strided conv's, within GRAD_RTOL."""
    from tests.support.tolerances import FORWARD_ATOL, GRAD_RTOL
    rng = np.random.default_rng(n * h)
    x = jnp.asarray(rng.standard_normal((n, h, h, c_in)), jnp.float32)
    kernel = jnp.asarray(rng.standard_normal((4, 4, c_out, c_in)) * 0.1, jnp.float32)
    ref = models.conv_transpose(x, kernel, 2, 1)
    got = models.transpose_by_phases(x, kernel, 2, 1)
    assert got.shape == ref.shape == (n, 2 * h, 2 * h, c_out)
    assert float(jnp.abs(got - ref).max()) <= FORWARD_ATOL * max(1.0, float(jnp.abs(ref).max()))
    # the strided conv this is the adjoint of: (N, 2H, 2W, c_out) -> (N, H, W, c_in)
    y = jnp.asarray(rng.standard_normal((n, 2 * h, 2 * h, c_out)), jnp.float32)
    cot = jnp.asarray(rng.standard_normal((n, h, h, c_in)), jnp.float32)
    def strided(a, k):  # the plain strided conv, as lax computes it
        return jax.lax.conv_general_dilated(a, k, (2, 2), ((1, 1), (1, 1)),
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))
    plain = jax.vjp(strided, y, kernel)
    phased = jax.vjp(lambda a, k: models.conv_by_phases(a, k, 2, 1), y, kernel)
    assert float(jnp.abs(phased[0] - plain[0]).max()) == 0.0  # the same forward op
    for want, have in zip(plain[1](cot), phased[1](cot)):
        assert float(jnp.abs(have - want).max()) <= GRAD_RTOL * float(jnp.abs(want).max())
    # and the transposed conv's gradients are conv_transpose's own
    for want, have in zip(jax.vjp(lambda a, k: models.conv_transpose(a, k, 2, 1), x, kernel)[1](got),
                          jax.vjp(lambda a, k: models.conv_transpose_by_phases(a, k, 2, 1), x, kernel)[1](got)):
        assert float(jnp.abs(have - want).max()) == 0.0


def test_only_the_onednn_path_builds_the_phase_form():
    spec = model_spec("dcgan64")
    G, D = models.build(spec)
    assert not any(isinstance(m, models.PhaseGradConv) for _, m in models.layers({"G": G, "D": D}, spec))
    assert not any(getattr(m, "phases", False) for _, m in models.layers({"G": G, "D": D}, spec))
    G, D = models.build(spec, phases=True)
    strided = {layer.name for layer in spec.layers if models.by_phases(layer.stride, layer.kernel, layer.pad)}
    phased = {name for name, m in models.layers({"G": G, "D": D}, spec)
              if isinstance(m, models.PhaseGradConv) or getattr(m, "phases", False)}
    assert phased == strided and len(strided) == 8  # G's deconv1-4, D's conv0-3 (dcgan64)
    assert not models.by_phases(1, 4, 0)  # G's first layer (1x1 to 4x4) and D's last stay as they are


def test_the_carry_and_the_modules_stay_one_state():
    """After a step the modules are written back on demand (nets()), and a weight loaded into
    them is what the next step starts from."""
    spec = model_spec("mnist32")
    b = shared_init_backend("jax")
    rng = np.random.default_rng(1)
    real = np.tanh(rng.standard_normal((8, 1, 32, 32))).astype(np.float32)
    z = rng.standard_normal((8, spec.preset.nz)).astype(np.float32)
    b.train_step(real, z)
    after = b.export_weights()  # the carry written back into the modules
    fresh = shared_init_backend("jax")
    assert not np.array_equal(after["G.deconv0.weight"], fresh.export_weights()["G.deconv0.weight"])
    b.load_weights(fresh.export_weights())  # into the modules; the next pass splits them again
    np.testing.assert_array_equal(b.generate(z, train=True), fresh.generate(z, train=True))
    b.train_step(real, z)  # and training goes on from them


@pytest.mark.slow
def test_the_matmul_precision_setting_reaches_every_convolution_of_the_step():
    """What makes the GPU's TF32 test (test_tf32.py) and the spec run's 'highest' mean anything:
    no layer fixes its own precision, so jax_default_matmul_precision decides every conv of the
    jitted training step (checked on the lowered program; it lowers the same on any device)."""
    import re
    backend = shared_init_backend("jax", "mnist32")
    real = np.zeros((4, 1, 32, 32), np.float32)
    z = np.zeros((4, model_spec("mnist32").preset.nz), np.float32)
    iteration = jax.jit(lambda carry, r, zz: training.spec_iteration(backend.graphs, backend.tx, backend.spec,
                                                                      carry, r, zz))
    seen = {}
    for setting, expected in (("highest", "HIGHEST"), (None, "DEFAULT")):
        with jax.default_matmul_precision(setting):
            text = iteration.lower(backend.carry(), real, z).as_text()
        seen[expected] = re.findall(r"precision_config = \[([^\]]*)\]", text)
        assert len(seen[expected]) >= 2 * 4  # forward and backward convs of G and D
        assert all(p.count(expected) == 2 for p in seen[expected]), (setting, set(seen[expected]))
