"""The float64 numpy oracle checked on its own (no framework): naive loops, adjoints, finite
differences and hand-composed updates. Every backend's parity tests are judged against it."""
from __future__ import annotations

import numpy as np
import pytest

from common.spec import AdamSpec, ModelSpec, Preset, model_spec
from common.canonical import draw_initial_weights
from tests.support import oracle as O

TINY = ModelSpec(Preset("tiny", image_size=16, channels=1, nz=4, ngf=4, ndf=4))


def _rng(seed=0):
    return np.random.default_rng(seed)


def _inputs(spec, n, seed=1):
    rng = _rng(seed)
    p = spec.preset
    real = rng.uniform(-1, 1, (n, p.channels, p.image_size, p.image_size))
    z = rng.standard_normal((n, p.nz))
    return real, z


# ---------------------------------------------------------------------------- naive references

def naive_conv2d(x, w, s, p):
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    ho, wo = (h + 2 * p - kh) // s + 1, (wd + 2 * p - kw) // s + 1
    y = np.zeros((n, o, ho, wo))
    for b in range(n):
        for oc in range(o):
            for i in range(ho):
                for j in range(wo):
                    y[b, oc, i, j] = np.sum(xp[b, :, i * s:i * s + kh, j * s:j * s + kw] * w[oc])
    return y


def naive_conv_transpose2d(x, w, s, p):
    """Scatter form: every input pixel adds w[i, o] * x into a (k x k) output patch."""
    n, ci, h, wd = x.shape
    _, co, kh, kw = w.shape
    full = np.zeros((n, co, (h - 1) * s + kh, (wd - 1) * s + kw))
    for b in range(n):
        for i in range(ci):
            for y in range(h):
                for xx in range(wd):
                    full[b, :, y * s:y * s + kh, xx * s:xx * s + kw] += x[b, i, y, xx] * w[i]
    return full[:, :, p:full.shape[2] - p, p:full.shape[3] - p]


def fd_check(f, arr, analytic, n_samples=None, h=1e-6, rtol=1e-6, seed=0):
    """Central finite differences of scalar f() wrt entries of arr (perturbed in place and
    restored), compared with analytic; tolerance relative to the tensor's max abs gradient."""
    assert analytic.shape == arr.shape
    flat = arr.reshape(-1)
    idx = np.arange(flat.size)
    if n_samples is not None and n_samples < flat.size:
        idx = _rng(seed).choice(flat.size, n_samples, replace=False)
    fd = np.empty(len(idx))
    for j, i in enumerate(idx):
        old = flat[i]
        flat[i] = old + h
        fp = f()
        flat[i] = old - h
        fm = f()
        flat[i] = old
        fd[j] = (fp - fm) / (2 * h)
    an = analytic.reshape(-1)[idx]
    scale = max(np.abs(analytic).max(), 1e-12)
    np.testing.assert_allclose(fd, an, rtol=rtol, atol=rtol * scale)


# ---------------------------------------------------------------------------- convolutions

CONV_CASES = [  # (n, c, o, h, w, k, stride, pad)
    (2, 3, 2, 5, 5, 3, 1, 0),
    (2, 3, 2, 6, 7, 3, 1, 1),
    (1, 2, 3, 8, 8, 4, 2, 1),
    (2, 2, 3, 7, 6, 4, 2, 1),  # (h + 2p - k) not divisible by the stride
    (1, 2, 2, 9, 9, 3, 3, 2),
    (2, 1, 2, 4, 4, 4, 1, 0),
]


@pytest.mark.parametrize("n,c,o,h,w,k,s,p", CONV_CASES)
def test_conv2d_matches_naive_loops(n, c, o, h, w, k, s, p):
    rng = _rng(1)
    x, wt = rng.standard_normal((n, c, h, w)), rng.standard_normal((o, c, k, k))
    np.testing.assert_allclose(O.conv2d(x, wt, s, p), naive_conv2d(x, wt, s, p), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n,ci,co,h,w,k,s,p", [(2, 3, 2, 1, 1, 4, 1, 0), (2, 3, 2, 4, 4, 4, 2, 1),
                                              (1, 2, 3, 3, 5, 3, 2, 0), (2, 2, 2, 3, 3, 3, 1, 1)])
def test_conv_transpose2d_matches_naive_scatter(n, ci, co, h, w, k, s, p):
    rng = _rng(2)
    x, wt = rng.standard_normal((n, ci, h, w)), rng.standard_normal((ci, co, k, k))
    y = O.conv_transpose2d(x, wt, s, p)
    assert y.shape == (n, co, (h - 1) * s - 2 * p + k, (w - 1) * s - 2 * p + k)
    np.testing.assert_allclose(y, naive_conv_transpose2d(x, wt, s, p), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k,s,p,h", [(4, 2, 1, 8), (4, 1, 0, 4), (3, 1, 1, 5), (3, 2, 1, 7), (4, 2, 1, 16)])
def test_conv_transpose_is_adjoint_of_conv(k, s, p, h):
    """<conv2d(x, w), y> == <x, conv_transpose2d(y, w)>: a conv weight (out, in, k, k) is a
    deconv weight (in'=out, out'=in, k, k) with no flip or transpose."""
    rng = _rng(3)
    x, w = rng.standard_normal((2, 3, h, h)), rng.standard_normal((5, 3, k, k))
    cx = O.conv2d(x, w, s, p)
    y = rng.standard_normal(cx.shape)
    ty = O.conv_transpose2d(y, w, s, p)
    assert ty.shape == x.shape
    np.testing.assert_allclose(np.vdot(cx, y), np.vdot(x, ty), rtol=1e-12)


@pytest.mark.parametrize("preset", ["mnist32", "dcgan64"])
def test_conv_output_sizes_match_spec_layer_table(preset):
    spec = model_spec(preset)
    for layer in spec.layers:
        x = np.zeros((1,) + layer.in_shape)
        w = np.zeros(layer.weight_shape)
        f = O.conv2d if layer.kind == "conv" else O.conv_transpose2d
        assert f(x, w, layer.stride, layer.pad).shape[1:] == layer.out_shape, layer.name


@pytest.mark.parametrize("n,c,o,h,w,k,s,p", CONV_CASES)
def test_conv2d_backward_finite_differences(n, c, o, h, w, k, s, p):
    rng = _rng(4)
    x, wt = rng.standard_normal((n, c, h, w)), rng.standard_normal((o, c, k, k))
    r = rng.standard_normal(O.conv2d(x, wt, s, p).shape)
    f = lambda: np.vdot(O.conv2d(x, wt, s, p), r)
    gx, gw = O.conv2d_backward(r, x, wt, s, p)
    fd_check(f, x, gx)
    fd_check(f, wt, gw)


@pytest.mark.parametrize("n,ci,co,h,w,k,s,p", [(2, 3, 2, 1, 1, 4, 1, 0), (2, 3, 2, 4, 4, 4, 2, 1),
                                              (1, 2, 3, 3, 5, 3, 2, 0), (2, 2, 2, 3, 3, 3, 1, 1)])
def test_conv_transpose2d_backward_finite_differences(n, ci, co, h, w, k, s, p):
    rng = _rng(5)
    x, wt = rng.standard_normal((n, ci, h, w)), rng.standard_normal((ci, co, k, k))
    r = rng.standard_normal(O.conv_transpose2d(x, wt, s, p).shape)
    f = lambda: np.vdot(O.conv_transpose2d(x, wt, s, p), r)
    gx, gw = O.conv_transpose2d_backward(r, x, wt, s, p)
    assert gx.shape == x.shape and gw.shape == wt.shape
    fd_check(f, x, gx)
    fd_check(f, wt, gw)


# ---------------------------------------------------------------------------- BN, activations, loss

@pytest.mark.parametrize("train", [True, False])
def test_batchnorm_backward_finite_differences(train):
    rng = _rng(6)
    x = rng.standard_normal((3, 4, 3, 2)) * 2 + 1
    gamma, beta = rng.normal(1, 0.3, 4), rng.standard_normal(4)
    rm, rv = rng.standard_normal(4), rng.uniform(0.5, 2, 4)
    r = rng.standard_normal(x.shape)
    f = lambda: np.vdot(O.batchnorm_forward(x, gamma, beta, rm, rv, 1e-5, train)[0], r)
    _, cache = O.batchnorm_forward(x, gamma, beta, rm, rv, 1e-5, train)
    gx, gg, gb = O.batchnorm_backward(r, cache)
    fd_check(f, x, gx)
    fd_check(f, gamma, gg)
    fd_check(f, beta, gb)


def test_batchnorm_train_normalises_and_reports_stats():
    rng = _rng(7)
    x = rng.standard_normal((5, 3, 4, 4)) * np.array([0.5, 2, 7])[None, :, None, None] + 3
    c = x.shape[1]
    y, cache = O.batchnorm_forward(x, np.ones(c), np.zeros(c), np.zeros(c), np.ones(c), 1e-5, True)
    var = x.var(axis=(0, 2, 3))
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), var / (var + 1e-5), rtol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, atol=1e-4)
    st, m = cache["stats"], 5 * 4 * 4
    np.testing.assert_allclose(st["mean"], x.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(st["var_biased"], var, rtol=1e-12)
    np.testing.assert_allclose(st["var_unbiased"], x.var(axis=(0, 2, 3), ddof=1), rtol=1e-12)
    np.testing.assert_allclose(st["var_unbiased"], var * m / (m - 1), rtol=1e-12)


def test_batchnorm_eval_uses_running_stats():
    rng = _rng(8)
    x = rng.standard_normal((2, 3, 2, 2))
    g, b, rm, rv = rng.standard_normal(3), rng.standard_normal(3), rng.standard_normal(3), rng.uniform(1, 2, 3)
    y, _ = O.batchnorm_forward(x, g, b, rm, rv, 1e-5, False)
    e = lambda a: a[None, :, None, None]
    np.testing.assert_allclose(y, e(g) * (x - e(rm)) / np.sqrt(e(rv) + 1e-5) + e(b), rtol=1e-12)


@pytest.mark.parametrize("kind", ["relu", "leaky_relu", "tanh", "none"])
def test_activation_backward_finite_differences(kind):
    rng = _rng(9)
    x = rng.standard_normal((2, 3, 4))
    x[np.abs(x) < 1e-3] = 0.5  # stay away from the kink
    r = rng.standard_normal(x.shape)
    f = lambda: np.vdot(O.activation_forward(x, kind, 0.2), r)
    out = O.activation_forward(x, kind, 0.2)
    fd_check(f, x, O.activation_backward(r, x, out, kind, 0.2))


def test_leaky_relu_slope_is_the_spec_value():
    assert O.activation_forward(np.array([-1.0, 2.0]), "leaky_relu", TINY.leaky_slope).tolist() == [-0.2, 2.0]


@pytest.mark.parametrize("target", [0.0, 1.0, 0.9])
def test_bce_with_logits_value_gradient_and_stability(target):
    rng = _rng(10)
    l = rng.standard_normal(6) * 3
    loss, grad = O.bce_with_logits(l, target)
    s = 1 / (1 + np.exp(-l))
    naive = -(target * np.log(s) + (1 - target) * np.log(1 - s)).mean()
    assert loss == pytest.approx(naive, rel=1e-12)
    fd_check(lambda: O.bce_with_logits(l, target)[0], l, grad)
    big = np.array([-1000.0, 1000.0, 0.0])
    lb, gb = O.bce_with_logits(big, target)
    assert np.isfinite(lb) and np.all(np.isfinite(gb))
    np.testing.assert_allclose(gb, (np.array([0.0, 1.0, 0.5]) - target) / 3, atol=1e-15)


# ---------------------------------------------------------------------------- networks

@pytest.mark.parametrize("preset", ["mnist32", "dcgan64"])
def test_forward_shapes_match_spec_layer_table(preset):
    spec = model_spec(preset)
    w = draw_initial_weights(spec, 0)
    real, z = _inputs(spec, 2)
    fake, cg = O.forward(spec, w, "G", z, train=True)
    assert fake.shape == (2, spec.preset.channels, spec.preset.image_size, spec.preset.image_size)
    assert fake.dtype == np.float64 and np.all(np.abs(fake) <= 1)
    for layer, lc in zip(spec.generator, cg["layers"]):
        assert lc["out"].shape[1:] == layer.out_shape, layer.name
    for x in (real, fake):
        logits, cd = O.forward(spec, w, "D", x, train=True)
        assert logits.shape == (2,)
        for layer, lc in zip(spec.discriminator, cd["layers"]):
            assert lc["out"].shape[1:] == layer.out_shape, layer.name
    # (N, nz, 1, 1) z is accepted too, and eval mode runs
    fake4, _ = O.forward(spec, w, "G", z.reshape(2, -1, 1, 1), train=True)
    np.testing.assert_array_equal(fake4, fake)
    assert O.forward(spec, w, "D", real, train=False)[0].shape == (2,)


def test_train_mode_bn_layers_output_zero_mean_unit_variance():
    spec = model_spec("mnist32")
    w = O.as_float64(draw_initial_weights(spec, 0))
    for k in w:
        if k.endswith(".gamma"):
            w[k] = np.ones_like(w[k])
    real, z = _inputs(spec, 4)
    for net, x in (("G", z), ("D", real)):
        _, cache = O.forward(spec, w, net, x, train=True)
        layers = spec.generator if net == "G" else spec.discriminator
        n_bn = 0
        for layer, lc in zip(layers, cache["layers"]):
            if layer.batchnorm:
                n_bn += 1
                pre = lc["pre"]  # BN output, before the activation
                np.testing.assert_allclose(pre.mean(axis=(0, 2, 3)), 0, atol=1e-10)
                # exactly v / (v + eps) of the batch variance v; with N(0, 0.02) weights v is
                # only ~1e-4..1e-2, so eps = 1e-5 shows (var ~0.96 rather than 1)
                vb = cache["bn_stats"][layer.bn_name]["var_biased"]
                np.testing.assert_allclose(pre.var(axis=(0, 2, 3)), vb / (vb + spec.bn.eps), rtol=1e-10)
                np.testing.assert_allclose(pre.var(axis=(0, 2, 3)), 1, atol=0.1)
                assert layer.bn_name in cache["bn_stats"]
        assert n_bn == len(cache["bn_stats"]) > 0


@pytest.mark.parametrize("net", ["G", "D"])
@pytest.mark.parametrize("train", [True, False])
def test_net_backward_finite_differences(net, train):
    spec = TINY
    w = O.as_float64(draw_initial_weights(spec, 3))
    rng = _rng(11)
    for k in w:  # non-trivial running stats for eval mode
        if k.endswith("running_mean"):
            w[k] = rng.normal(0, 0.1, w[k].shape)
        elif k.endswith("running_var"):
            w[k] = rng.uniform(0.5, 1.5, w[k].shape)
    real, z = _inputs(spec, 3)
    x = z if net == "G" else real
    out, cache = O.forward(spec, w, net, x, train=train)
    r = rng.standard_normal(out.shape)
    f = lambda: np.vdot(O.forward(spec, w, net, x, train=train)[0], r)
    gx, grads = O.backward(spec, w, net, cache, r)
    assert gx.shape == x.shape
    assert list(grads) == O.trainable_keys(spec, net)
    fd_check(f, x, gx, n_samples=12)
    for k, g in grads.items():
        fd_check(f, w[k], g, n_samples=8)


def test_gradients_match_finite_differences_of_the_losses():
    spec = TINY
    w = O.as_float64(draw_initial_weights(spec, 5))
    real, z = _inputs(spec, 4, seed=6)
    res = O.gradients(spec, w, real, z)
    lab = spec.loss

    def losses():
        fake, _ = O.forward(spec, w, "G", z, train=True)
        ld = (O.bce_with_logits(O.forward(spec, w, "D", real, train=True)[0], lab.real_label)[0]
              + O.bce_with_logits(O.forward(spec, w, "D", fake, train=True)[0], lab.fake_label)[0])
        lg = O.bce_with_logits(O.forward(spec, w, "D", fake, train=True)[0], lab.real_label)[0]
        return ld, lg

    ld, lg = losses()
    assert res["loss_d"] == pytest.approx(ld, rel=1e-14)
    assert res["loss_g"] == pytest.approx(lg, rel=1e-14)
    assert res["loss_d"] == pytest.approx(res["loss_d_real"] + res["loss_d_fake"], rel=1e-14)
    keys = O.trainable_keys(spec, "G") + O.trainable_keys(spec, "D")
    assert sorted(res["grads"]) == sorted(keys)
    for k in keys:  # D's grads come from loss_d, G's from loss_g with D untouched
        which = 0 if k.startswith("D.") else 1
        fd_check(lambda: losses()[which], w[k], res["grads"][k], n_samples=6, seed=hash(k) % 1000)


def test_gradients_do_not_modify_inputs():
    spec = TINY
    w = draw_initial_weights(spec, 0)
    before = {k: v.copy() for k, v in w.items()}
    real, z = _inputs(spec, 2)
    O.gradients(spec, w, real.astype(np.float32), z.astype(np.float32))
    O.train_iteration(spec, w, None, real, z, 1)
    for k in w:
        assert w[k].dtype == np.float32
        np.testing.assert_array_equal(w[k], before[k])


# ---------------------------------------------------------------------------- Adam

def test_adam_first_step_moves_by_lr_sign():
    a = AdamSpec()
    rng = _rng(12)
    p = rng.standard_normal(50)
    g = rng.standard_normal(50) * 10.0 ** rng.uniform(-4, 2, 50)
    new, m, v = O.adam_update(p, g, None, None, 1, a, "pytorch")
    np.testing.assert_allclose(new - p, -a.lr * np.sign(g), rtol=1e-3)
    np.testing.assert_allclose(m, (1 - a.beta1) * g, rtol=1e-15)
    np.testing.assert_allclose(v, (1 - a.beta2) * g * g, rtol=1e-15)
    z, _, _ = O.adam_update(p, np.zeros(50), None, None, 1, a, "pytorch")
    np.testing.assert_array_equal(z, p)


def test_adam_conventions_differ_only_by_eps_placement():
    rng = _rng(13)
    p0 = rng.standard_normal(20)
    grads = [rng.standard_normal(20) * 10.0 ** rng.uniform(-6, 0, 20) for _ in range(6)]

    def run(spec_, conv, steps=6):
        p, m, v = p0, None, None
        for t in range(1, steps + 1):
            p, m, v = O.adam_update(p, grads[t - 1], m, v, t, spec_, conv)
        return p, m, v

    a0 = AdamSpec(eps=0.0)
    pt, mt, vt = run(a0, "pytorch")
    pf, mf, vf = run(a0, "folded")
    np.testing.assert_allclose(pt, pf, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(mt, mf)
    np.testing.assert_array_equal(vt, vf)
    # with eps: after step t, folded == pytorch with eps / sqrt(1 - b2^t), step by step
    a = AdamSpec()
    p, m, v = p0, None, None
    for t in range(1, 7):
        pf, _, _ = O.adam_update(p, grads[t - 1], m, v, t, a, "folded")
        scaled = AdamSpec(eps=a.eps / np.sqrt(1 - a.beta2 ** t))
        pp, _, _ = O.adam_update(p, grads[t - 1], m, v, t, scaled, "pytorch")
        np.testing.assert_allclose(pf, pp, rtol=0, atol=1e-15)
        pt_, _, _ = O.adam_update(p, grads[t - 1], m, v, t, a, "pytorch")
        assert np.abs(pt_ - pf).max() > 0  # the eps placement is a real difference
        p, m, v = pf, *O.adam_update(p, grads[t - 1], m, v, t, a, "folded")[1:]
    for alias in ("keras", "mxnet", "chainer"):
        np.testing.assert_array_equal(O.adam_update(p0, grads[0], None, None, 1, a, alias)[0],
                                      O.adam_update(p0, grads[0], None, None, 1, a, "folded")[0])
    with pytest.raises(ValueError):
        O.adam_update(p0, grads[0], None, None, 1, a, "sgd")


# ---------------------------------------------------------------------------- the iteration

@pytest.mark.parametrize("preset,convention,unbiased", [
    ("tiny", "pytorch", True), ("tiny", "folded", False), ("mnist32", "pytorch", True)])
def test_train_iteration_against_hand_composition(preset, convention, unbiased):
    spec = TINY if preset == "tiny" else model_spec(preset)
    w0 = O.as_float64(draw_initial_weights(spec, 7))
    real, z = _inputs(spec, 4, seed=8)
    new, state, loss_d, loss_g = O.train_iteration(spec, w0, None, real, z, 1, convention, unbiased)
    assert sorted(new) == sorted(w0) and all(v.dtype == np.float64 for v in new.values())
    keys_d, keys_g = O.trainable_keys(spec, "D"), O.trainable_keys(spec, "G")

    # D step: Adam on gradients()'s D grads at the initial weights; loss_d at the initial weights
    res0 = O.gradients(spec, w0, real, z)
    assert loss_d == pytest.approx(res0["loss_d"], rel=1e-12)
    for k in keys_d:
        expect, m, v = O.adam_update(w0[k], res0["grads"][k], None, None, 1, spec.adam, convention)
        np.testing.assert_allclose(new[k], expect, rtol=0, atol=1e-14, err_msg=k)
        np.testing.assert_allclose(state["m"][k], m, rtol=1e-12, err_msg=k)
        np.testing.assert_allclose(state["v"][k], v, rtol=1e-12, err_msg=k)

    # G step: D with its UPDATED weights, G's initial weights
    w_mid = dict(w0)
    for k in keys_d:
        w_mid[k] = new[k]
    res1 = O.gradients(spec, w_mid, real, z)
    assert loss_g == pytest.approx(res1["loss_g"], rel=1e-12)
    assert loss_g != pytest.approx(res0["loss_g"], rel=1e-12)  # the D update is visible
    for k in keys_g:
        expect, _, _ = O.adam_update(w0[k], res1["grads"][k], None, None, 1, spec.adam, convention)
        np.testing.assert_allclose(new[k], expect, rtol=0, atol=1e-14, err_msg=k)

    # running stats: G once, D three times (real, fake, fake with the updated D), in that order
    a = spec.bn.new_batch_weight
    var_key = "var_unbiased" if unbiased else "var_biased"
    fake, cg = O.forward(spec, w0, "G", z, train=True)
    passes = {"G": [cg["bn_stats"]],
              "D": [O.forward(spec, w0, "D", real, train=True)[1]["bn_stats"],
                    O.forward(spec, w0, "D", fake, train=True)[1]["bn_stats"],
                    O.forward(spec, w_mid, "D", fake, train=True)[1]["bn_stats"]]}
    n_checked = 0
    for stats_list in passes.values():
        for bn in stats_list[0]:
            rm, rv = w0[f"{bn}.running_mean"], w0[f"{bn}.running_var"]
            for stats in stats_list:
                rm = (1 - a) * rm + a * stats[bn]["mean"]
                rv = (1 - a) * rv + a * stats[bn][var_key]
            np.testing.assert_allclose(new[f"{bn}.running_mean"], rm, rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(new[f"{bn}.running_var"], rv, rtol=1e-12)
            n_checked += 1
    assert n_checked == sum(l.batchnorm for l in spec.layers)


def test_update_running_stats_conventions():
    spec = TINY
    w = O.as_float64(draw_initial_weights(spec, 0))
    _, z = _inputs(spec, 3)
    _, cache = O.forward(spec, w, "G", z, train=True)
    ub, b = O.update_running_stats(w, cache, spec, True), O.update_running_stats(w, cache, spec, False)
    for bn, st in cache["bn_stats"].items():
        m = st["m"]
        np.testing.assert_allclose(ub[f"{bn}.running_mean"], 0.1 * st["mean"], rtol=1e-14)
        np.testing.assert_allclose(b[f"{bn}.running_mean"], 0.1 * st["mean"], rtol=1e-14)
        np.testing.assert_allclose(ub[f"{bn}.running_var"], 0.9 + 0.1 * st["var_biased"] * m / (m - 1), rtol=1e-14)
        np.testing.assert_allclose(b[f"{bn}.running_var"], 0.9 + 0.1 * st["var_biased"], rtol=1e-14)
    assert np.all(w["G.bn0.running_var"] == 1)  # input untouched
    _, eval_cache = O.forward(spec, w, "G", z, train=False)
    with pytest.raises(ValueError):
        O.update_running_stats(w, eval_cache, spec)


def test_two_iterations_carry_optimizer_state():
    spec = TINY
    w0 = draw_initial_weights(spec, 9)
    real, z = _inputs(spec, 4)
    w1, s1, _, _ = O.train_iteration(spec, w0, None, real, z, 1)
    w2, s2, ld, lg = O.train_iteration(spec, w1, s1, real, z, 2)
    assert np.isfinite(ld) and np.isfinite(lg)
    k = "D.conv0.weight"
    g2 = O.gradients(spec, w1, real, z)["grads"][k]
    expect, _, _ = O.adam_update(w1[k], g2, s1["m"][k], s1["v"][k], 2, spec.adam, "pytorch")
    np.testing.assert_allclose(w2[k], expect, rtol=0, atol=1e-14)
