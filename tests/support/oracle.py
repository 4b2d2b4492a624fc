"""A float64 numpy reference implementation of the DCGAN spec (docs/SPEC.md).

Framework-independent ground truth for the parity tests of every backend. Everything is computed
in float64 (inputs are converted); weights use the canonical layout and keys of common/canonical.py:
conv (out, in, kh, kw), deconv (in, out, kh, kw), BN `{bn_name}.gamma/.beta/.running_mean/.running_var`.

Main entry points:
  conv2d / conv_transpose2d and their *_backward     - NCHW, no bias, PyTorch semantics
  forward(spec, weights, net, x, train=) -> (out, cache)
  backward(spec, weights, net, cache, grad_out) -> (grad_input, grads)
  bce_with_logits(logits, target) -> (loss, dloss/dlogits)
  update_running_stats(weights, cache, spec, unbiased=True) -> new weights
  adam_update(param, grad, m, v, t, adam_spec, convention) -> (param, m, v)
  gradients(spec, weights, real, z) -> {"loss_d", "loss_g", "grads", ...}   (no update)
  train_iteration(spec, weights, opt_state, real, z, t, ...) -> (weights, opt_state, loss_d, loss_g)
"""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from common.spec import BN_TRAINABLE, AdamSpec, LayerSpec, ModelSpec

DTYPE = np.float64
spec_dtype = DTYPE  # everything in the oracle is float64

PYTORCH = "pytorch"
FOLDED = "folded"
_CONVENTIONS = {"pytorch": PYTORCH, "torch": PYTORCH,
                "folded": FOLDED, "keras": FOLDED, "tensorflow": FOLDED, "tf": FOLDED,
                "mxnet": FOLDED, "chainer": FOLDED}


def _f64(a) -> np.ndarray:
    return np.asarray(a, dtype=DTYPE)


def as_float64(weights: dict) -> dict[str, np.ndarray]:
    """A new dict with every array converted to float64 (the inputs are never modified)."""
    return {k: np.array(v, dtype=DTYPE) for k, v in weights.items()}


# --------------------------------------------------------------------------------------------
# Convolutions (NCHW, no bias)
# --------------------------------------------------------------------------------------------

def _pad(x: np.ndarray, pad: int) -> np.ndarray:
    if pad == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))


def _windows(xp: np.ndarray, kh: int, kw: int, stride: int) -> np.ndarray:
    """View (N, C, Ho, Wo, kh, kw) of the padded input xp: the im2col patches."""
    return sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]


def _col2im(cols: np.ndarray, padded_hw: tuple[int, int], stride: int) -> np.ndarray:
    """Scatter-add patches cols (N, Ho, Wo, C, kh, kw) into a padded image (N, C, Hp, Wp)."""
    n, ho, wo, c, kh, kw = cols.shape
    hp, wp = padded_hw
    out = np.zeros((n, c, hp, wp), dtype=DTYPE)
    cols = cols.transpose(0, 3, 4, 5, 1, 2)  # (N, C, kh, kw, Ho, Wo)
    for a in range(kh):
        for b in range(kw):
            out[:, :, a:a + stride * (ho - 1) + 1:stride,
                b:b + stride * (wo - 1) + 1:stride] += cols[:, :, a, b]
    return out


def conv2d(x, w, stride: int, pad: int) -> np.ndarray:
    """Cross-correlation like torch.nn.functional.conv2d: x (N,C,H,W), w (O,C,kh,kw) -> (N,O,Ho,Wo)."""
    x, w = _f64(x), _f64(w)
    cols = _windows(_pad(x, pad), w.shape[2], w.shape[3], stride)
    y = np.tensordot(cols, w, axes=([1, 4, 5], [1, 2, 3]))  # (N, Ho, Wo, O)
    return np.ascontiguousarray(y.transpose(0, 3, 1, 2))


def conv2d_backward_input(grad_out, x_shape, w, stride: int, pad: int) -> np.ndarray:
    """d(sum(grad_out * conv2d(x, w)))/dx for an input of shape x_shape."""
    gy, w = _f64(grad_out), _f64(w)
    cols = np.tensordot(gy, w, axes=([1], [0]))  # (N, Ho, Wo, C, kh, kw)
    hp, wp = x_shape[2] + 2 * pad, x_shape[3] + 2 * pad
    gxp = _col2im(cols, (hp, wp), stride)
    return gxp[:, :, pad:pad + x_shape[2], pad:pad + x_shape[3]]


def conv2d_backward_weight(grad_out, x, w_shape, stride: int, pad: int) -> np.ndarray:
    """d(sum(grad_out * conv2d(x, w)))/dw, shape w_shape = (O, C, kh, kw)."""
    gy, x = _f64(grad_out), _f64(x)
    cols = _windows(_pad(x, pad), w_shape[2], w_shape[3], stride)  # (N, C, Ho, Wo, kh, kw)
    return np.tensordot(gy, cols, axes=([0, 2, 3], [0, 2, 3]))  # (O, C, kh, kw)


def conv2d_backward(grad_out, x, w, stride: int, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """(grad wrt x, grad wrt w) of conv2d(x, w, stride, pad) given grad_out."""
    w = _f64(w)
    return (conv2d_backward_input(grad_out, np.shape(x), w, stride, pad),
            conv2d_backward_weight(grad_out, x, w.shape, stride, pad))


def conv_transpose2d(x, w, stride: int, pad: int) -> np.ndarray:
    """torch.nn.functional.conv_transpose2d (no output_padding): x (N,I,H,W), w (I,O,kh,kw)
    -> (N, O, (H-1)*stride - 2*pad + kh, (W-1)*stride - 2*pad + kw)."""
    x, w = _f64(x), _f64(w)
    n, _, h, wd = x.shape
    kh, kw = w.shape[2], w.shape[3]
    cols = np.tensordot(x, w, axes=([1], [0]))  # (N, H, W, O, kh, kw)
    hp, wp = (h - 1) * stride + kh, (wd - 1) * stride + kw
    out = _col2im(cols, (hp, wp), stride)
    ho, wo = hp - 2 * pad, wp - 2 * pad
    if ho <= 0 or wo <= 0:
        raise ValueError(f"conv_transpose2d: output size {ho}x{wo} is not positive")
    return np.ascontiguousarray(out[:, :, pad:pad + ho, pad:pad + wo])


def conv_transpose2d_backward_input(grad_out, w, stride: int, pad: int) -> np.ndarray:
    """d(sum(grad_out * conv_transpose2d(x, w)))/dx: the conv2d of grad_out with w as (O=I, C=O)."""
    return conv2d(grad_out, w, stride, pad)


def conv_transpose2d_backward_weight(grad_out, x, w_shape, stride: int, pad: int) -> np.ndarray:
    """d(sum(grad_out * conv_transpose2d(x, w)))/dw, shape w_shape = (I, O, kh, kw)."""
    gy, x = _f64(grad_out), _f64(x)
    cols = _windows(_pad(gy, pad), w_shape[2], w_shape[3], stride)  # (N, O, H, W, kh, kw)
    cols = cols[:, :, :x.shape[2], :x.shape[3]]
    return np.tensordot(x, cols, axes=([0, 2, 3], [0, 2, 3]))  # (I, O, kh, kw)


def conv_transpose2d_backward(grad_out, x, w, stride: int, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """(grad wrt x, grad wrt w) of conv_transpose2d(x, w, stride, pad) given grad_out."""
    w = _f64(w)
    return (conv_transpose2d_backward_input(grad_out, w, stride, pad),
            conv_transpose2d_backward_weight(grad_out, x, w.shape, stride, pad))


# --------------------------------------------------------------------------------------------
# Batch norm and activations
# --------------------------------------------------------------------------------------------

def batchnorm_forward(x, gamma, beta, running_mean, running_var, eps: float, train: bool):
    """BN over (N, H, W) per channel. Returns (y, cache); in train mode the cache carries the batch
    mean, the biased variance (used to normalise) and the unbiased one (x m/(m-1), m = N*H*W)."""
    x = _f64(x)
    gamma, beta = _f64(gamma), _f64(beta)
    if train:
        m = x.shape[0] * x.shape[2] * x.shape[3]
        if m <= 1:
            raise ValueError("batch norm in train mode needs more than 1 value per channel")
        mean = x.mean(axis=(0, 2, 3))
        var = x.var(axis=(0, 2, 3))  # biased
        stats = {"mean": mean, "var_biased": var, "var_unbiased": var * (m / (m - 1)), "m": m}
    else:
        mean, var = _f64(running_mean), _f64(running_var)
        stats = None
    invstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - mean[None, :, None, None]) * invstd[None, :, None, None]
    y = gamma[None, :, None, None] * xhat + beta[None, :, None, None]
    return y, {"xhat": xhat, "invstd": invstd, "gamma": gamma, "train": train, "stats": stats}


def batchnorm_backward(grad_out, cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(grad x, grad gamma, grad beta); in train mode the gradient flows through the batch stats."""
    gy = _f64(grad_out)
    xhat, invstd, gamma = cache["xhat"], cache["invstd"], cache["gamma"]
    dgamma = (gy * xhat).sum(axis=(0, 2, 3))
    dbeta = gy.sum(axis=(0, 2, 3))
    scale = (gamma * invstd)[None, :, None, None]
    if cache["train"]:
        m = gy.shape[0] * gy.shape[2] * gy.shape[3]
        dx = scale * (gy - dbeta[None, :, None, None] / m - xhat * dgamma[None, :, None, None] / m)
    else:
        dx = scale * gy
    return dx, dgamma, dbeta


def activation_forward(x, kind: str, slope: float) -> np.ndarray:
    if kind == "relu":
        return np.maximum(x, 0.0)
    if kind == "leaky_relu":
        return np.where(x > 0, x, slope * x)
    if kind == "tanh":
        return np.tanh(x)
    if kind == "none":
        return x
    raise ValueError(f"unknown activation {kind!r}")


def activation_backward(grad_out, pre, out, kind: str, slope: float) -> np.ndarray:
    """Gradient through the activation; at 0, relu/leaky use the x > 0 branch test as PyTorch does."""
    if kind == "relu":
        return np.where(pre > 0, grad_out, 0.0)
    if kind == "leaky_relu":
        return np.where(pre > 0, grad_out, slope * grad_out)
    if kind == "tanh":
        return grad_out * (1.0 - out * out)
    if kind == "none":
        return grad_out
    raise ValueError(f"unknown activation {kind!r}")


# --------------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------------

def _layers(spec: ModelSpec, net: str) -> tuple[LayerSpec, ...]:
    if net == "G":
        return spec.generator
    if net == "D":
        return spec.discriminator
    raise ValueError(f"net must be 'G' or 'D', got {net!r}")


def trainable_keys(spec: ModelSpec, net: str) -> list[str]:
    """Canonical keys of the trainable tensors of one net (conv weights, BN gamma/beta)."""
    keys = []
    for layer in _layers(spec, net):
        keys.append(f"{layer.name}.weight")
        if layer.batchnorm:
            keys += [f"{layer.bn_name}.{t}" for t in BN_TRAINABLE]
    return keys


def forward(spec: ModelSpec, weights: dict, net: str, x, *, train: bool):
    """Run G (x = z, (N, nz) or (N, nz, 1, 1)) or D (x NCHW). Returns (out, cache): G images NCHW,
    D logits (N,). cache["bn_stats"][bn_name] holds mean / var_biased / var_unbiased in train mode."""
    layers = _layers(spec, net)
    x = _f64(x)
    input_shape = x.shape
    h = x.reshape(x.shape[0], -1, 1, 1) if net == "G" else x
    if h.ndim != 4 or h.shape[1:] != layers[0].in_shape:
        raise ValueError(f"{net}: input shape {input_shape} does not match {layers[0].in_shape}")
    caches, bn_stats = [], {}
    for layer in layers:
        w = _f64(weights[f"{layer.name}.weight"])
        conv = conv2d if layer.kind == "conv" else conv_transpose2d
        lc = {"x": h}
        h = conv(h, w, layer.stride, layer.pad)
        if layer.batchnorm:
            b = layer.bn_name
            h, lc["bn"] = batchnorm_forward(h, weights[f"{b}.gamma"], weights[f"{b}.beta"],
                                            weights[f"{b}.running_mean"], weights[f"{b}.running_var"],
                                            spec.bn.eps, train)
            if train:
                bn_stats[b] = lc["bn"]["stats"]
        lc["pre"] = h
        h = activation_forward(h, layer.activation, spec.leaky_slope)
        lc["out"] = h
        caches.append(lc)
    out = h.reshape(h.shape[0]) if net == "D" else h
    cache = {"net": net, "train": train, "input_shape": input_shape, "out_shape": h.shape,
             "layers": caches, "bn_stats": bn_stats}
    return out, cache


def backward(spec: ModelSpec, weights: dict, net: str, cache: dict, grad_out):
    """Backpropagate grad_out (shape of forward's out) through the net of `cache`.
    Returns (grad wrt the forward input, in its shape; {canonical key: grad} for conv weights and
    BN gamma/beta)."""
    if cache["net"] != net:
        raise ValueError(f"cache is for net {cache['net']!r}, not {net!r}")
    layers = _layers(spec, net)
    g = _f64(grad_out).reshape(cache["out_shape"])
    grads = {}
    for layer, lc in zip(reversed(layers), reversed(cache["layers"])):
        g = activation_backward(g, lc["pre"], lc["out"], layer.activation, spec.leaky_slope)
        if layer.batchnorm:
            g, dgamma, dbeta = batchnorm_backward(g, lc["bn"])
            grads[f"{layer.bn_name}.gamma"] = dgamma
            grads[f"{layer.bn_name}.beta"] = dbeta
        w = _f64(weights[f"{layer.name}.weight"])
        back = conv2d_backward if layer.kind == "conv" else conv_transpose2d_backward
        g, grads[f"{layer.name}.weight"] = back(g, lc["x"], w, layer.stride, layer.pad)
    grads = {k: grads[k] for k in trainable_keys(spec, net)}  # stable order
    return g.reshape(cache["input_shape"]), grads


def update_running_stats(weights: dict, cache: dict, spec: ModelSpec, unbiased: bool = True) -> dict:
    """New weights (float64) with the running stats of every BN in a train-mode cache updated:
    new = (1 - w) * old + w * batch, w = spec.bn.new_batch_weight. unbiased=True adds the
    unbiased batch variance (PyTorch, Chainer); unbiased=False the biased one (Keras, MXNet)."""
    if not cache["train"]:
        raise ValueError("update_running_stats needs a train-mode forward's cache")
    a = spec.bn.new_batch_weight
    new = as_float64(weights)
    for b, st in cache["bn_stats"].items():
        var = st["var_unbiased"] if unbiased else st["var_biased"]
        new[f"{b}.running_mean"] = (1.0 - a) * new[f"{b}.running_mean"] + a * st["mean"]
        new[f"{b}.running_var"] = (1.0 - a) * new[f"{b}.running_var"] + a * var
    return new


# --------------------------------------------------------------------------------------------
# Loss and optimiser
# --------------------------------------------------------------------------------------------

def bce_with_logits(logits, target) -> tuple[float, np.ndarray]:
    """Batch-mean BCEWithLogits: mean(max(l,0) - l*t + log1p(exp(-|l|))), and its gradient
    (sigmoid(l) - t) / N wrt the logits. target: scalar or array like logits."""
    l = _f64(logits)
    t = np.broadcast_to(_f64(target), l.shape)
    loss = np.maximum(l, 0.0) - l * t + np.log1p(np.exp(-np.abs(l)))
    # numerically stable sigmoid
    e = np.exp(-np.abs(l))
    sig = np.where(l >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return float(loss.mean()), (sig - t) / l.size


def adam_update(param, grad, m, v, t: int, adam_spec: AdamSpec, convention: str = PYTORCH):
    """One Adam step at step t (1-based); m, v None means zeros. Returns (new_param, m, v).

    m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2  (both conventions), then
      "pytorch": p -= lr * (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps)
      "folded" (Keras/TF, MXNet, Chainer; aliases "keras", "mxnet", "chainer"):
                 lr_t = lr * sqrt(1-b2^t)/(1-b1^t);  p -= lr_t * m / (sqrt(v) + eps)
    The two agree exactly for eps = 0; otherwise "folded" equals "pytorch" with eps/sqrt(1-b2^t).
    Weight decay (0 in the spec) is added to the gradient as L2 (PyTorch Adam's weight_decay)."""
    conv = _CONVENTIONS.get(convention)
    if conv is None:
        raise ValueError(f"unknown Adam convention {convention!r}; valid: {sorted(_CONVENTIONS)}")
    if t < 1:
        raise ValueError(f"Adam step t is 1-based, got {t}")
    p, g = _f64(param), _f64(grad)
    if adam_spec.weight_decay:
        g = g + adam_spec.weight_decay * p
    m = np.zeros_like(p) if m is None else _f64(m)
    v = np.zeros_like(p) if v is None else _f64(v)
    b1, b2, lr, eps = adam_spec.beta1, adam_spec.beta2, adam_spec.lr, adam_spec.eps
    m = b1 * m + (1.0 - b1) * g
    v = b2 * v + (1.0 - b2) * g * g
    c1, c2 = 1.0 - b1 ** t, 1.0 - b2 ** t
    if conv == PYTORCH:
        p = p - lr * (m / c1) / (np.sqrt(v / c2) + eps)
    else:
        lr_t = lr * math.sqrt(c2) / c1
        p = p - lr_t * m / (np.sqrt(v) + eps)
    return p, m, v


def _adam_step_net(spec, weights, grads, opt_state, t, convention):
    """Adam on every key of grads; returns (new weights, new opt_state), inputs untouched."""
    new_w = dict(weights)
    new_state = {"m": dict(opt_state["m"]), "v": dict(opt_state["v"])}
    for k, g in grads.items():
        new_w[k], new_state["m"][k], new_state["v"][k] = adam_update(
            weights[k], g, opt_state["m"].get(k), opt_state["v"].get(k), t, spec.adam, convention)
    return new_w, new_state


# --------------------------------------------------------------------------------------------
# The iteration
# --------------------------------------------------------------------------------------------

def gradients(spec: ModelSpec, weights: dict, real, z) -> dict:
    """Losses and gradients at fixed weights, no update (G and D in train mode):
    loss_d = BCE(D(real), real_label) + BCE(D(G(z).detached), fake_label), grads wrt D's params;
    loss_g = BCE(D(G(z)), real_label) with the same D, grads wrt G's params (D's are discarded).
    Returns {"loss_d", "loss_g", "grads", "loss_d_real", "loss_d_fake", "fake", "logits_real",
    "logits_fake"} (fake = G(z) NCHW; both D passes use their own batch statistics)."""
    w = as_float64(weights)
    lab = spec.loss
    fake, cache_g = forward(spec, w, "G", z, train=True)
    logits_real, cache_r = forward(spec, w, "D", real, train=True)
    loss_r, d_r = bce_with_logits(logits_real, lab.real_label)
    logits_fake, cache_f = forward(spec, w, "D", fake, train=True)
    loss_f, d_f = bce_with_logits(logits_fake, lab.fake_label)
    _, grads_r = backward(spec, w, "D", cache_r, d_r)
    _, grads_f = backward(spec, w, "D", cache_f, d_f)
    grads = {k: grads_r[k] + grads_f[k] for k in grads_r}
    # G step: a separate D pass on the same fake (identical in train mode, mirrors PyTorch).
    logits_g, cache_dg = forward(spec, w, "D", fake, train=True)
    loss_g, d_g = bce_with_logits(logits_g, lab.real_label)
    d_fake, _ = backward(spec, w, "D", cache_dg, d_g)
    _, grads_g = backward(spec, w, "G", cache_g, d_fake)
    grads.update(grads_g)
    return {"loss_d": loss_r + loss_f, "loss_g": loss_g, "grads": grads,
            "loss_d_real": loss_r, "loss_d_fake": loss_f, "fake": fake,
            "logits_real": logits_real, "logits_fake": logits_fake}


def train_iteration(spec: ModelSpec, weights: dict, opt_state, real, z, t: int,
                    convention: str = PYTORCH, unbiased_running_var: bool = True):
    """One SPEC.md iteration. Returns (new_weights float64, new_opt_state, loss_d, loss_g).

    G(z) once (train mode; G's running stats updated once); D on real, then on G(z).detached
    (D's running stats updated twice, in that order); one Adam step on D with the summed loss's
    grads; then D with its UPDATED weights on the same G(z) (D's running stats updated a third
    time), loss_g = BCE(., real_label), grads through D into G, one Adam step on G only.
    loss_g is therefore computed with the updated D. opt_state None means zeros; it is
    {"m": {key: array}, "v": {key: array}}; t is the 1-based Adam step (same for D and G)."""
    w = as_float64(weights)
    state = {"m": {}, "v": {}} if opt_state is None else opt_state
    lab = spec.loss
    fake, cache_g = forward(spec, w, "G", z, train=True)
    w = update_running_stats(w, cache_g, spec, unbiased_running_var)

    logits_real, cache_r = forward(spec, w, "D", real, train=True)
    w = update_running_stats(w, cache_r, spec, unbiased_running_var)
    logits_fake, cache_f = forward(spec, w, "D", fake, train=True)
    w = update_running_stats(w, cache_f, spec, unbiased_running_var)
    loss_r, d_r = bce_with_logits(logits_real, lab.real_label)
    loss_f, d_f = bce_with_logits(logits_fake, lab.fake_label)
    _, grads_r = backward(spec, w, "D", cache_r, d_r)
    _, grads_f = backward(spec, w, "D", cache_f, d_f)
    grads_d = {k: grads_r[k] + grads_f[k] for k in grads_r}
    w, state = _adam_step_net(spec, w, grads_d, state, t, convention)

    logits_g, cache_dg = forward(spec, w, "D", fake, train=True)
    w = update_running_stats(w, cache_dg, spec, unbiased_running_var)
    loss_g, d_g = bce_with_logits(logits_g, lab.real_label)
    d_fake, _ = backward(spec, w, "D", cache_dg, d_g)
    _, grads_g = backward(spec, w, "G", cache_g, d_fake)
    w, state = _adam_step_net(spec, w, grads_g, state, t, convention)
    return w, state, loss_r + loss_f, loss_g


def _flip_branch(cache: dict, layer_index: int, flat_index: int) -> dict:
    """A copy of a forward cache with one ReLU/LeakyReLU pre-activation moved across the kink
    (forward values unchanged): backward() then takes the other branch at that element only."""
    layers = list(cache["layers"])
    pre = layers[layer_index]["pre"].copy()
    value = pre.flat[flat_index]
    pre.flat[flat_index] = -value if value > 0 else max(-value, 1e-300)
    layers[layer_index] = dict(layers[layer_index], pre=pre)
    return dict(cache, layers=layers)


def _near_kinks(spec: ModelSpec, net: str, cache: dict, rtol: float):
    """(layer index, flat index) of every ReLU/LeakyReLU pre-activation within rtol of its
    layer's largest |pre-activation| from 0."""
    for i, (layer, lc) in enumerate(zip(_layers(spec, net), cache["layers"])):
        if layer.activation in ("relu", "leaky_relu"):
            pre = np.abs(lc["pre"])
            for flat in np.flatnonzero(pre < rtol * pre.max()):
                yield i, int(flat)


def kink_slack(spec: ModelSpec, weights: dict, real, z, rtol: float) -> dict:
    """Elementwise bound on how far each gradient of gradients() can move when rounding puts
    ReLU/LeakyReLU pre-activations on the other side of their kink.

    At fixed forward values the gradients are affine in the branch taken at each element, so
    any combination of flips among the near-kink elements (within rtol of their layer's scale
    from 0) moves a gradient by at most the sum of |change| from flipping each one alone. The
    fake batch passes through D twice in a backend (D step, G step): each pass may flip on its
    own, so each is counted. Returns {canonical key: array}, zeros where no kink is near."""
    w = as_float64(weights)
    lab = spec.loss
    fake, cache_g = forward(spec, w, "G", z, train=True)
    logits_real, cache_r = forward(spec, w, "D", real, train=True)
    logits_fake, cache_f = forward(spec, w, "D", fake, train=True)
    _, d_r = bce_with_logits(logits_real, lab.real_label)
    _, d_f = bce_with_logits(logits_fake, lab.fake_label)
    _, d_g = bce_with_logits(logits_fake, lab.real_label)

    def g_grads(c_g, c_dg):
        d_fake, _ = backward(spec, w, "D", c_dg, d_g)
        return backward(spec, w, "G", c_g, d_fake)[1]

    slack = {k: np.zeros(np.shape(w[k])) for k in trainable_keys(spec, "D") + trainable_keys(spec, "G")}

    def add(delta_of):
        for key, delta in delta_of.items():
            slack[key] += np.abs(delta)

    for cache, d in ((cache_r, d_r), (cache_f, d_f)):  # D's step: its two passes
        base = backward(spec, w, "D", cache, d)[1]
        for i, flat in _near_kinks(spec, "D", cache, rtol):
            flipped = backward(spec, w, "D", _flip_branch(cache, i, flat), d)[1]
            add({k: flipped[k] - base[k] for k in base})
    base_g = g_grads(cache_g, cache_f)  # G's step: D's pass on the fake, then G
    for i, flat in _near_kinks(spec, "D", cache_f, rtol):
        flipped = g_grads(cache_g, _flip_branch(cache_f, i, flat))
        add({k: flipped[k] - base_g[k] for k in base_g})
    for i, flat in _near_kinks(spec, "G", cache_g, rtol):
        flipped = g_grads(_flip_branch(cache_g, i, flat), cache_f)
        add({k: flipped[k] - base_g[k] for k in base_g})
    return slack
