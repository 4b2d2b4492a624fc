"""JAX-specific checks: what the shared parity tests cannot see from outside."""
from __future__ import annotations

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
    ours, _ = training.adam(spec).update(g, training.adam(spec).init(g), g)
    raw = optax.chain(optax.scale_by_adam(spec.beta1, spec.beta2, spec.eps, eps_root=0.0),
                      optax.scale_by_learning_rate(spec.lr))
    theirs, _ = raw.update(g, raw.init(g), g)
    exact = -spec.lr * 1e-3 / (1e-3 + spec.eps)
    assert abs(float(ours["w"][0]) - exact) <= 1e-6 * spec.lr
    assert abs(float(theirs["w"][0]) - exact) > 3e-6 * spec.lr  # what the correction is for


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
def test_onednn_path_sets_the_classic_runtime_and_keeps_float32_forward_parity():
    """--onednn (XLA:CPU's classic runtime, oneDNN convolutions) in a fresh process, as XLA reads
    its flags once: the flag is recorded, and in float32 the train-mode forward still meets the
    oracle bound (a different convolution kernel, not a different computation)."""
    from common import canonical
    from tests.support import oracle
    from tests.support.tolerances import FORWARD_ATOL
    proc = run_python("""
        import json
        import numpy as np
        from tests.support.backends import shared_init_backend
        b = shared_init_backend("jax", onednn=True)
        z = np.random.default_rng(3).standard_normal((8, 100)).astype(np.float32)
        info = b.device_info()
        print(json.dumps({"flags": info["threads"]["XLA_FLAGS"], "paths": info["fast_paths"],
                          "g": b.generate(z, train=True).tolist()}))
    """, block=False, timeout=180)
    out = last_json(proc)
    assert "--xla_cpu_use_thunk_runtime=false" in out["flags"].split()
    assert out["paths"]["classic_cpu_runtime_onednn"] is True
    spec = model_spec("mnist32")
    z = np.random.default_rng(3).standard_normal((8, 100)).astype(np.float32)
    ref, _ = oracle.forward(spec, canonical.draw_initial_weights(spec, 0), "G", z, train=True)
    g = np.asarray(out["g"], dtype=np.float32)
    assert np.abs(g - ref).max() <= FORWARD_ATOL * max(1.0, np.abs(ref).max())


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
