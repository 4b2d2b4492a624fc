"""TensorFlow/Keras-specific checks: what the shared parity tests cannot see from outside."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from common.data import noise
from common import canonical
from common.spec import model_spec
from tests.support import oracle
from tests.support.backends import require_backend, shared_init_backend
from tests.support.tolerances import FORWARD_ATOL, GRAD_RTOL

require_backend("tensorflow")
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from backends import compat  # noqa: E402
from backends.base import BackendOptions, BackendUnavailable  # noqa: E402
from backends.tensorflow import models  # noqa: E402
from backends.tensorflow import weights as tf_weights  # noqa: E402
from backends.tensorflow.backend import Backend  # noqa: E402
from backends.tensorflow.training import SpecStepSize  # noqa: E402

from tests.support.processes import with_repo_on_path  # noqa: E402
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _backend(preset="mnist32", **options):
    return shared_init_backend("tensorflow", preset, **options)


def _batch(preset="mnist32", n=8, seed=0):
    p = model_spec(preset).preset
    rng = np.random.default_rng(seed)
    real = np.tanh(rng.standard_normal((n, p.channels, p.image_size, p.image_size))).astype(np.float32)
    return real, rng.standard_normal((n, p.nz)).astype(np.float32)


def _layers(net, kind):
    return [layer for layer in net.stack if isinstance(layer, kind)]


def test_keras_defaults_that_differ_are_set_from_the_spec():
    spec = model_spec("mnist32")
    # The defaults really differ (else setting them would prove nothing) ...
    assert keras.layers.BatchNormalization().momentum != spec.bn.decay
    assert keras.layers.BatchNormalization().epsilon != spec.bn.eps
    assert keras.layers.LeakyReLU().negative_slope != spec.leaky_slope
    assert keras.optimizers.Adam().epsilon != spec.adam.eps
    assert keras.layers.Conv2D(1, 4).use_bias
    # ... and the models carry the spec's values.
    b = _backend()
    for net in (b.G, b.D):
        for bn in _layers(net, keras.layers.BatchNormalization):
            assert (bn.momentum, bn.epsilon, bn.axis) == (spec.bn.decay, spec.bn.eps, -1)
            assert bn.gamma_initializer.mean == spec.bn.gamma_init_mean
            assert bn.gamma_initializer.stddev == spec.bn.gamma_init_std
        for conv in _layers(net, keras.layers.Conv2D) + _layers(net, keras.layers.Conv2DTranspose):
            assert not conv.use_bias and conv.data_format == "channels_last"
            assert conv.kernel_initializer.stddev == spec.init_std
    leaky = _layers(b.D, keras.layers.LeakyReLU)
    assert leaky and all(layer.negative_slope == spec.leaky_slope for layer in leaky)
    for opt in (b.gan.g_optimizer, b.gan.d_optimizer):
        assert isinstance(opt._learning_rate, SpecStepSize) and opt._learning_rate.adam == spec.adam
        assert float(opt.learning_rate) == pytest.approx(spec.adam.lr, rel=1e-4)  # corrected, t=1
        assert (opt.beta_1, opt.beta_2, opt.epsilon) == (spec.adam.beta1, spec.adam.beta2, spec.adam.eps)
        assert not opt.amsgrad and opt.weight_decay is None
    assert b.gan.jit_compile is False  # Keras's 'auto' would turn XLA on by itself on a GPU
    assert keras.backend.backend() == "tensorflow" and os.environ["KERAS_BACKEND"] == "tensorflow"


@pytest.mark.parametrize("preset", ["mnist32", "dcgan64"])
def test_keras_kernel_layouts_and_paddings(preset):
    """SPEC.md's layout table for Keras, read from the variables themselves: conv (kh, kw, in,
    out), deconv (kh, kw, out, in); and 'same' wherever the spec pads by 1 (k4 s2)."""
    spec = model_spec(preset)
    b = _backend(preset)
    for layer in spec.layers:
        keras_layer = b.nets()[layer.net].get_layer(layer.local_name)
        k, cin, cout = layer.kernel, layer.in_channels, layer.out_channels
        assert tuple(keras_layer.kernel.shape) == ((k, k, cin, cout) if layer.kind == "conv"
                                                   else (k, k, cout, cin)), layer.name
        assert keras_layer.padding == ("valid" if layer.pad == 0 else "same"), layer.name
    a = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    np.testing.assert_array_equal(tf_weights.to_canonical_layout(tf_weights.to_framework_layout(a)), a)
    assert tf_weights.to_framework_layout(a).shape == (4, 5, 3, 2)


def test_padding_that_keras_cannot_express_is_refused():
    layer = model_spec("mnist32").discriminator[1]
    with pytest.raises(NotImplementedError, match="padding 2"):
        models.keras_padding(dataclasses.replace(layer, pad=2))


@pytest.mark.slow
def test_xla_option_runs_and_stays_close():
    """jit_compile fuses ops into other float32 rounding orders. loss_d is a forward only
    (FORWARD_ATOL); loss_g comes after D's Adam step, where a flipped near-zero gradient moves
    a weight by 2·lr (SPEC.md): measured 4e-6 here, bounded at 1e-4."""
    real, z = _batch()
    ref = _backend().train_step(real, z)
    b = _backend(xla=True)
    assert b.xla and b.gan.jit_compile is True and b.device_info()["xla"]
    loss_d, loss_g = b.train_step(real, z)
    assert loss_d == pytest.approx(ref[0], abs=FORWARD_ATOL)
    assert loss_g == pytest.approx(ref[1], abs=1e-4)


@pytest.mark.slow
def test_mixed_precision_runs_and_stays_close():
    """bf16 has an 8-bit mantissa (u = 2^-9 ≈ 2e-3 per op): closeness only, as for PyTorch's."""
    real, z = _batch()
    ref = _backend().train_step(real, z)
    b = _backend(bf16=True)
    assert all(layer.dtype_policy.name == "mixed_bfloat16" for layer in b.G.stack)
    assert all(v.dtype == "float32" for v in b.G.trainable_variables)  # master weights
    losses = b.train_step(real, z)
    assert losses == pytest.approx(ref, abs=0.1) and np.all(np.isfinite(losses))
    assert b.generate(z).dtype == np.float32


@pytest.mark.skipif(bool(tf.config.list_physical_devices("GPU")), reason="checks the no-GPU error path")
def test_gpu_requested_without_gpu_is_a_clear_error():
    with pytest.raises(BackendUnavailable, match="--device gpu"):
        Backend(model_spec("mnist32"), BackendOptions(device="gpu"))


def test_auto_device_on_this_machine():
    b = Backend(model_spec("mnist32"), BackendOptions())
    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    assert b.device_info()["device"] == ("gpu" if has_gpu else "cpu")
    memory = b.peak_memory()
    assert memory["bytes"] > 0 and memory["kind"] == ("device-allocator" if has_gpu else "rss")


def _keras_step_size(lr, t, adam):
    """alpha as Keras 3's Adam.update_step forms it: lr·sqrt(1-b2^t)/(1-b1^t), all in float32."""
    t = tf.constant(t, tf.float32)
    b1, b2 = tf.constant(adam.beta1, tf.float32), tf.constant(adam.beta2, tf.float32)
    return float(tf.cast(lr, tf.float32) * tf.sqrt(1 - tf.pow(b2, t)) / (1 - tf.pow(b1, t)))


@pytest.mark.parametrize("t", [1, 2, 3, 10, 100, 1000, 10000])
def test_spec_step_size_corrects_keras_float32_bias_correction(t):
    """Keras's float32 1 - b2^t cancels (float32(0.999) is 1.3e-8 off): alpha is 6.4e-6 small
    at t=1, which the shared optimizer test (1e-6) sees. With SpecStepSize as lr, alpha is the
    float64 one to a few float32 roundings (4 ops: 2.4e-7 relative)."""
    adam = model_spec("mnist32").adam
    exact = adam.lr * np.sqrt(1 - adam.beta2 ** t) / (1 - adam.beta1 ** t)
    corrected = _keras_step_size(SpecStepSize(adam)(tf.constant(t - 1, tf.int64)), t, adam)
    assert abs(corrected / exact - 1) <= 4 * 2.0 ** -24
    if t <= 10:  # where 1 - b2^t is small enough for the cancellation to matter
        assert abs(_keras_step_size(adam.lr, t, adam) / exact - 1) > 1e-6


@pytest.mark.slow
def test_dcgan64_gradients_match_the_oracle_at_tensorflows_own_fake():
    """The shared gradient test for dcgan64 fails by one LeakyReLU kink, not by TF's gradients:
    TF's G(z) is 6.4e-7 off the float64 oracle's (within the forward bound), which moves one
    pre-activation of D's layer 2 on the fake batch from -1.4e-6 to +5.5e-7, so the float64
    oracle itself, given TF's G(z), has gradients up to 1.4e-3 (relative) away from its own.
    With that kink taken out (D's passes on TF's fake, G's backward through the oracle's G),
    every gradient is within the shared GRAD_RTOL."""
    spec = model_spec("dcgan64")
    w = canonical.draw_initial_weights(spec, 0)
    b = _backend("dcgan64")
    rng = np.random.default_rng(1)  # the shared test's batch("dcgan64", 4)
    p = spec.preset
    real = np.tanh(rng.standard_normal((4, p.channels, p.image_size, p.image_size))).astype(np.float32)
    z = rng.standard_normal((4, p.nz)).astype(np.float32)
    fake = b.generate(z, train=True)
    w64, labels = oracle.as_float64(w), spec.loss

    def d_pass(x, label):
        logits, cache = oracle.forward(spec, w64, "D", x, train=True)
        _, dlogits = oracle.bce_with_logits(logits, label)
        return oracle.backward(spec, w64, "D", cache, dlogits)

    _, g_real = d_pass(real, labels.real_label)
    _, g_fake = d_pass(fake, labels.fake_label)
    ref = {k: g_real[k] + g_fake[k] for k in g_real}
    dfake, _ = d_pass(fake, labels.real_label)
    _, cache_g = oracle.forward(spec, w64, "G", z, train=True)
    ref.update(oracle.backward(spec, w64, "G", cache_g, dfake)[1])

    got = b.gradients(real, z)["grads"]
    assert set(got) == set(ref)
    for key, g in ref.items():
        assert np.abs(got[key] - g).max() <= GRAD_RTOL * np.abs(g).max(), key
    own = oracle.gradients(spec, w, real, z)["grads"]  # the kink: the oracle against itself
    assert max(np.abs(own[k] - ref[k]).max() / np.abs(ref[k]).max() for k in ref) > 10 * GRAD_RTOL


@pytest.mark.slow
def test_the_pipeline_does_not_fetch_ahead():
    """No prefetch: when step i is reported, exactly the batches up to i were drawn, so the
    harness's fetch runs serially inside the step and FetchTimer can take it out."""
    images, _ = _batch("mnist32", 64, seed=1)
    plan = noise.BatchPlan(len(images), 16, seed=0)
    drawn, seen = [0], []

    def counted():
        for item in noise.iterate_batches(images, plan, 100, 0, 4):
            drawn[0] += 1
            yield item

    _backend().train(counted(), 0, lambda i, d, g, s: seen.append((i, drawn[0])))
    assert seen == [(0, 1), (1, 2), (2, 3), (3, 4)]


@pytest.mark.slow
def test_fit_is_quiet():
    """No Python warnings from Keras's loop (its 'input ran out of data' at the end of the
    harness's finite stream is expected and filtered) and TF's Python logger at ERROR."""
    images, _ = _batch("mnist32", 32, seed=1)
    plan = noise.BatchPlan(len(images), 16, seed=0)
    b = _backend()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        b.train(noise.iterate_batches(images, plan, 100, 0, 2), 0, lambda *a: None)
    assert not [w for w in caught if "keras" in w.filename or "tensorflow" in w.filename], \
        [str(w.message) for w in caught]
    assert tf.get_logger().level >= 40  # logging.ERROR


def test_absl_severity_parsing():
    assert compat.absl_severity("I0000 00:00:1795.1 22631 port.cc:153] oneDNN custom ...") == 0
    assert compat.absl_severity("W0000 00:00:1795.1 22631 x.cc:1] w") == 1
    assert compat.absl_severity("E0000 00:00:1795.1 22631 x.cc:1] e") == 2
    assert compat.absl_severity("WARNING: All log messages before absl::InitializeLog() is "
                                 "called are written to STDERR\n") == 0
    assert compat.absl_severity("Traceback (most recent call last):") is None
    assert compat.absl_severity("Illegal instruction") is None


@pytest.mark.slow
def test_fresh_process_is_quiet_and_sets_threads():
    """In a process of its own, as the worker runs it: with run_all's TF_CPP_MIN_LOG_LEVEL=2
    nothing of TF's start-up reaches stderr, and options.threads sets both TF pools."""
    code = ("import json; from common.spec import model_spec; "
            "from backends.base import BackendOptions; "
            "from backends.tensorflow.backend import Backend; "
            "b = Backend(model_spec('mnist32'), BackendOptions(device='cpu', threads=1)); "
            "print(json.dumps(b.device_info()['threads']))")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=with_repo_on_path())
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"intra_op": 1, "inter_op": 1}
    assert proc.stderr.strip() == "", proc.stderr[-3000:]


def test_the_device_prefetching_pipeline_keeps_the_harness_batches_and_their_order():
    """training.dataset(..., gpu=device) copies to the device and prefetches (one GPU); here to
    the CPU, which runs the same pipeline: every batch once, in order, values unchanged."""
    from backends.tensorflow import training
    spec = model_spec("mnist32")
    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal((4, 1, 32, 32)).astype(np.float32),
                rng.standard_normal((4, spec.preset.nz)).astype(np.float32)) for _ in range(3)]
    got = [(r.numpy(), z.numpy()) for r, z in training.dataset(iter(batches), spec.preset, "/CPU:0")]
    assert len(got) == len(batches)
    for (r, z), (r0, z0) in zip(got, batches):
        np.testing.assert_array_equal(r, r0)
        np.testing.assert_array_equal(z, z0)


def test_step_reporter_keeps_an_overlapped_fetch_in_the_step_time():
    """CPU: the harness's fetch ran inside the step and is taken out; GPU (overlapped): it ran
    beside the step, so taking it out would overstate the speed."""
    import time
    from backends.tensorflow import training
    from common.timing import FetchTimer

    def slow():
        time.sleep(0.05)
        yield 0

    for overlapped in (False, True):
        fetch, steps = FetchTimer(slow()), []
        reporter = training.StepReporter(fetch, 0, lambda *a: steps.append(a[3]), overlapped=overlapped)
        reporter.on_train_batch_begin(0)
        next(fetch)
        reporter.on_train_batch_end(0, {"loss_d": 0.0, "loss_g": 0.0})
        assert (steps[0] >= 0.05) == overlapped
