"""Every backend against the float64 numpy oracle of the spec (tests/support/oracle.py).

Parametrised over the registered backends: a new backend gets these tests by registering.
Tolerances are derived here, next to the assertions that use them (SPEC.md, "Parity").
Marked `gpu`: `python -m benchmarks.gpu_check` runs this module with DCGAN_BENCH_TEST_DEVICE=gpu,
so every backend that sees the GPU is held to the same bounds there (tests/support/backends.py).
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

import backends

from common.data import noise
from common import canonical
from common.spec import model_spec
from common.timing import warmup_steps
from tests.support import oracle
from tests.support.tolerances import (FORWARD, FORWARD_ATOL, GRAD_RTOL, GRADIENTS, ONE_ITERATION,
                                      assert_within)


pytestmark = pytest.mark.gpu

PRESET_BATCH = [("mnist32", 16), ("dcgan64", 4)]


@pytest.mark.parametrize("preset,n", PRESET_BATCH)
def test_output_shapes(make_backend, batch, preset, n):
    b = make_backend(preset)
    p = model_spec(preset).preset
    real, z = batch(preset, n)
    assert b.generate(z).shape == (n, p.channels, p.image_size, p.image_size)
    assert b.discriminate(real).shape == (n,)
    assert b.generate(z).dtype == np.float32


def test_probe_lists_the_cpu_first_and_a_gpu_only_where_there_is_one(backend_name):
    """The grid (benchmarks/throughput.py backend_device) and --list read probe()'s devices:
    "cpu" first; any other entry means a GPU this framework can use."""
    backend = backends.load(backend_name)
    devices = backend.probe()["devices"]
    assert devices[0] == "cpu"
    assert (len(devices) > 1) == (backend.runtime.gpu_unavailable_reason() is None)


@pytest.mark.parametrize("preset", ["mnist32", "dcgan64"])
def test_every_layer_output_shape(make_backend, batch, preset):
    """Observed on the framework's own layers, so a padding convention that differs (Keras
    'same' vs explicit p1) shows up here before it shows up as a parity failure."""
    spec = model_spec(preset)
    real, z = batch(preset, 2)
    shapes = make_backend(preset).layer_output_shapes(z, real)
    expected = {layer.name: layer.out_shape for layer in spec.layers}
    expected.update({layer.bn_name: layer.out_shape for layer in spec.layers if layer.batchnorm})
    assert shapes == expected


@pytest.mark.parametrize("preset", ["mnist32", "dcgan64"])
def test_trainable_parameters_per_layer_equal_pytorch(make_backend, preset):
    """The spec's counts are PyTorch's (checked against the published DCGAN numbers in
    test_spec), so equal to the spec layer by layer is equal to PyTorch layer by layer."""
    spec = model_spec(preset)
    expected = {}
    for layer in spec.layers:
        expected[layer.name] = int(np.prod(layer.weight_shape))  # no biases anywhere
        if layer.batchnorm:
            expected[layer.bn_name] = 2 * layer.out_channels  # gamma and beta
    counts = make_backend(preset).trainable_parameter_counts()
    assert counts == expected
    assert sum(counts.values()) == spec.parameter_count()


@pytest.mark.parametrize("preset", ["mnist32", "dcgan64"])
def test_weight_round_trip_and_parameter_count(make_backend, preset):
    spec = model_spec(preset)
    b = make_backend(preset, seed=3)
    exported = b.export_weights()
    canonical.validate(exported, spec)  # exactly the spec's keys and shapes = its parameter count
    ref = canonical.draw_initial_weights(spec, 3)
    for key in ref:
        np.testing.assert_array_equal(exported[key], ref[key], err_msg=key)


@pytest.mark.parametrize("preset,n", PRESET_BATCH)
@pytest.mark.parametrize("train", [False, True], ids=["inference", "train"])
def test_forward_matches_oracle(make_backend, batch, preset, n, train):
    spec = model_spec(preset)
    b = make_backend(preset)
    w = canonical.draw_initial_weights(spec, 0)
    if not train:  # realistic, non-trivial running statistics: those of another batch
        other_real, other_z = batch(preset, n, seed=11)
        w = _with_batch_stats(spec, w, "G", other_z)
        w = _with_batch_stats(spec, w, "D", other_real)
        b.load_weights({k: v.astype(np.float32) for k, v in w.items()})
    real, z = batch(preset, n)
    g_ref, _ = oracle.forward(spec, w, "G", z, train=train)
    d_ref, _ = oracle.forward(spec, w, "D", real, train=train)
    g, d = b.generate(z, train=train), b.discriminate(real, train=train)
    assert_within(FORWARD, "G", g, g_ref, FORWARD_ATOL, max(1.0, np.abs(g_ref).max()))
    assert_within(FORWARD, "D", d, d_ref, FORWARD_ATOL, max(1.0, np.abs(d_ref).max()))


def _with_batch_stats(spec, w, net, x):
    """w with net's running statistics replaced by x's batch statistics (train-mode forward)."""
    _, cache = oracle.forward(spec, w, net, x, train=True)
    w = dict(w)
    for name, stats in cache["bn_stats"].items():
        w[f"{name}.running_mean"], w[f"{name}.running_var"] = stats["mean"], stats["var_biased"]
    return w


def test_forward_changes_no_running_statistics(make_backend, batch):
    b = make_backend()
    before = b.export_weights()
    real, z = batch()
    b.generate(z, train=True), b.discriminate(real, train=True)
    b.generate(z), b.discriminate(real)
    b.gradients(real, z)
    after = b.export_weights()
    for key in before:
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)


# Kinks: a ReLU/LeakyReLU pre-activation within float32 rounding of 0 can take the other branch
# in a backend, which moves the gradients of the tensors below it by O(1) at that element, not
# by rounding (measured: 4e-3 of D.conv1's max for TF on dcgan64 from one element at -1.4e-6).
# Pre-activations carry the forward error derived above (1e-5 of their scale), so every element
# within KINK_RTOL of its layer's scale may flip; tests/support/oracle.py kink_slack bounds, elementwise,
# what any combination of such flips can do, and the comparison allows exactly that on top of
# GRAD_RTOL. The slack is not small (mnist32 batch 16: 13 G, 17 D-real and 34 D-fake elements
# within 1e-5; up to 10% of G.deconv0's max gradient), which is the honest size of the
# discontinuity; it is zero for tensors above every kink (e.g. D's last conv), and the losses
# above carry no slack at all.
KINK_RTOL = FORWARD_ATOL


@functools.lru_cache(maxsize=None)
def _oracle_gradients(preset: str, n: int):
    """The oracle's gradients and kink slack for the shared weights and batch: the same for
    every backend, computed once."""
    spec = model_spec(preset)
    p = spec.preset
    rng = np.random.default_rng(1)  # the `batch` fixture's draw for seed 1
    real = np.tanh(rng.standard_normal((n, p.channels, p.image_size, p.image_size))).astype(np.float32)
    z = rng.standard_normal((n, p.nz)).astype(np.float32)
    w = canonical.draw_initial_weights(spec, 0)
    return real, z, oracle.gradients(spec, w, real, z), oracle.kink_slack(spec, w, real, z, KINK_RTOL)


@pytest.mark.parametrize("preset,n", PRESET_BATCH)
def test_gradients_match_oracle(make_backend, batch, preset, n):
    b = make_backend(preset)
    real, z, ref, slack = _oracle_gradients(preset, n)
    np.testing.assert_array_equal(real, batch(preset, n)[0])  # the cached batch is the fixture's
    got = b.gradients(real, z)
    assert_within(GRADIENTS, "loss_d", got["loss_d"], ref["loss_d"], FORWARD_ATOL)
    assert_within(GRADIENTS, "loss_g", got["loss_g"], ref["loss_g"], FORWARD_ATOL)
    assert set(got["grads"]) == set(ref["grads"])
    for key, g in ref["grads"].items():
        assert got["grads"][key].shape == g.shape, key
        assert_within(GRADIENTS, key, got["grads"][key], g, GRAD_RTOL, np.abs(g).max(), slack[key])


def _bn_stats_after(spec, w, passes, unbiased):
    """Running statistics after the given (net, input, weights-for-forward) train-mode passes,
    composed with the oracle in the backend's convention (unbiased: the m/(m-1) factor)."""
    for net, x, fw in passes:
        _, cache = oracle.forward(spec, fw, net, x, train=True)
        w = oracle.update_running_stats(w, cache, spec, unbiased=unbiased)
    return w


def test_one_iteration_matches_oracle(make_backend, batch):
    """One train_step, checked piece by piece against the spec's iteration.

    Adam's first step moves every parameter by ~lr·sign(g), so where float32 noise flips the
    sign of a near-zero gradient the update differs by 2·lr: parameters are checked flip-aware.
    To keep that from leaking into the rest, the G step and D's third BN pass are recomposed by
    the oracle from the backend's own updated D (what the spec says the G step must see).
    """
    spec = model_spec("mnist32")
    w0 = oracle.as_float64(canonical.draw_initial_weights(spec, 0))
    b = make_backend()
    real, z = batch("mnist32", 16)
    loss_d, loss_g = b.train_step(real, z)
    w1 = b.export_weights()

    ref = oracle.gradients(spec, w0, real, z)
    assert_within(ONE_ITERATION, "loss_d", loss_d, ref["loss_d"], FORWARD_ATOL)  # before any update: pure forward

    # D's update: Adam(t=1) of the oracle's gradients.
    lr = spec.adam.lr
    d_keys, g_keys = oracle.trainable_keys(spec, "D"), oracle.trainable_keys(spec, "G")
    _assert_adam_step(w1, w0, ref["grads"], d_keys, lr, spec, b.adam_convention)

    # G step sees the updated D: loss_G and G's gradients from the backend's D weights.
    w_mid = dict(w0, **{k: w1[k].astype(np.float64) for k in d_keys})
    ref_g = oracle.gradients(spec, w_mid, real, z)
    assert_within(ONE_ITERATION, "loss_g", loss_g, ref_g["loss_g"], FORWARD_ATOL)
    _assert_adam_step(w1, w0, ref_g["grads"], g_keys, lr, spec, b.adam_convention)

    # Running statistics: G once, D three times (real, fake, fake through the updated D).
    fake, _ = oracle.forward(spec, w0, "G", z, train=True)
    expected = _bn_stats_after(spec, w0, [("G", z, w0), ("D", real, w0), ("D", fake, w0),
                                          ("D", fake, w_mid)], b.running_var_unbiased)
    for key in w1:
        if "running" in key:
            assert_within(ONE_ITERATION, key, w1[key], expected[key], FORWARD_ATOL,
                          max(np.abs(expected[key]).max(), 1e-30))


def _assert_adam_step(w1, w0, grads, keys, lr, spec, convention):
    """Adam at t=1 in the backend's convention: p - lr·g/(|g| + eps') with eps' = eps
    ("pytorch") or eps/sqrt(1-beta2) ("folded"). Where |g| is above the float32 gradient error
    (GRAD_RTOL of the tensor's max), the sign cannot flip and the step is exact to float32
    rounding of p (~1e-9 here, plus 1e-7 slack); elsewhere it is at most 2·lr."""
    for key in keys:
        p, _, _ = oracle.adam_update(w0[key], grads[key], None, None, 1, spec.adam, convention)
        diff = np.abs(w1[key] - p)
        # a sign flip's bound, not a rounding one: asserted, not recorded as a parity difference
        assert diff.max() <= 2 * lr * (1 + 1e-3), key
        confident = np.abs(grads[key]) > 10 * GRAD_RTOL * np.abs(grads[key]).max()
        assert confident.mean() > 0.5, f"{key}: too few gradients above the noise to test"
        assert_within(ONE_ITERATION, key, w1[key][confident], p[confident], 1e-7)


def test_training_is_deterministic_and_moves(make_backend, batch):
    """Three iterations twice from the same weights and data give identical losses and weights
    (on CPU), and the weights and running statistics really change."""
    images, _ = batch("mnist32", 64)
    plan = noise.BatchPlan(len(images), 16, seed=0)
    runs = []
    for _ in range(2):
        b = make_backend()
        losses = [b.train_step(real, z) for real, z in noise.iterate_batches(images, plan, 100, 0, 3)]
        runs.append((losses, b.export_weights()))
    (l1, w1), (l2, w2) = runs
    assert np.all(np.isfinite(l1))
    assert l1 == l2
    w0 = canonical.draw_initial_weights(model_spec("mnist32"), 0)
    for key in w0:
        np.testing.assert_array_equal(w1[key], w2[key], err_msg=key)
        assert not np.array_equal(w1[key], w0[key]), f"{key} did not change"


def test_train_loop_calls_on_step_in_order(make_backend, batch):
    images, _ = batch("mnist32", 64)
    plan = noise.BatchPlan(len(images), 16, seed=0)
    calls = []
    b = make_backend()
    b.train(noise.iterate_batches(images, plan, 100, 5, 9), 5, lambda *a: calls.append(a))
    assert [c[0] for c in calls] == [5, 6, 7, 8]
    assert all(np.isfinite(c[1]) and np.isfinite(c[2]) and c[3] > 0 for c in calls)
    # The loop computes what train_step computes.
    ref = make_backend()
    for (real, z), call in zip(noise.iterate_batches(images, plan, 100, 5, 9), calls):
        assert ref.train_step(real, z) == call[1:3]


@pytest.mark.slow
def test_step_seconds_exclude_the_harness_batch_fetch(make_backend, batch):
    """The harness's data work is harness overhead, not the backend's step: a batch source that
    sleeps FETCH s per fetch must not show in the reported seconds (a mnist32 step at batch 16
    takes 0.03-0.5 s on an idle 2-core CPU, the slowest being Chainer's numpy; at load 6 on two
    cores PyTorch's and Chainer's exceeded 1 s, so the sleep, and the bound with it, is 2 s: a
    step that counted the fetch would still read >= 2 s). The first step is warm-up
    (common.timing.warmup_steps): graph frameworks trace and build their step there (TF:
    0.4-1.8 s here), so the bound applies after it."""
    import time
    FETCH = 2.0
    images, _ = batch("mnist32", 64)
    plan = noise.BatchPlan(len(images), 16, seed=0)

    def slow_batches():
        for item in noise.iterate_batches(images, plan, 100, 0, 4):
            time.sleep(FETCH)
            yield item

    seconds = []
    make_backend().train(slow_batches(), 0, lambda i, d, g, s: seconds.append(s))
    assert len(seconds) == 4 and max(seconds[warmup_steps(4):]) < FETCH


def test_own_init_follows_the_spec_without_shared_weights(backend_name):
    """--no-shared-init: the framework draws the spec's distributions itself, seeded (so
    repeatable) and from one stream (no two layers share draws). Bounds are 6 standard errors of
    the sample statistics for the smallest tensor tested."""
    from backends.base import BackendOptions
    import backends
    spec = model_spec("mnist32")
    make = lambda seed: backends.load(backend_name)(spec, BackendOptions(device="cpu", seed=seed))  # noqa: E731
    a, b, c = make(5).export_weights(), make(5).export_weights(), make(6).export_weights()
    canonical.validate(a, spec)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert not np.array_equal(a["D.conv1.weight"], c["D.conv1.weight"])  # the seed is used
    w = a["D.conv1.weight"]  # 131072 draws of N(0, 0.02)
    assert abs(w.mean()) < 6 * 0.02 / np.sqrt(w.size)
    assert abs(w.std() - 0.02) < 6 * 0.02 / np.sqrt(2 * w.size)
    gamma = a["G.bn0.gamma"]  # 256 draws of N(1, 0.02), not a framework's constant 1
    assert abs(gamma.mean() - 1.0) < 6 * 0.02 / np.sqrt(gamma.size)
    assert abs(gamma.std() - 0.02) < 6 * 0.02 / np.sqrt(2 * gamma.size)
    assert not np.array_equal(a["G.bn1.gamma"][:64], a["G.bn2.gamma"])
    assert np.all(a["G.bn0.beta"] == 0) and np.all(a["G.bn0.running_mean"] == 0)
    assert np.all(a["G.bn0.running_var"] == 1)
