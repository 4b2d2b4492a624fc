"""SPEC.md's iteration as one pure function, jitted whole by the backend, and the Adam and loss
it uses. The loop around it is BackendBase.fetching_loop (losses fetched every `fetch_every`
steps; on the CPU every step).

The carry is the whole training state as a pytree: {"G": (params, batch_stats), "D": (...),
"opt": {"G": optax state, "D": optax state}} (Flax NNX's split: nnx.Param and nnx.BatchStat
states). The backend jits spec_iteration once with the carry donated: XLA updates the weights,
running statistics and Adam moments in place instead of allocating a second copy per step.

G runs once: jax.vjp keeps its pullback, the D step uses the fake images without a gradient to
G, and the G step's gradient of loss_G with respect to the fake images (through the updated D,
whose weight gradients are never formed) is pulled back through G. BN running statistics
change as in the reference loop: G's once, D's by its real, fake and G-step passes in order.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from common.spec import AdamSpec, ModelSpec


def bce_with_logits(logits: jax.Array, target: float) -> jax.Array:
    """Binary cross-entropy on logits, batch mean (float32 also under bf16 compute)."""
    logits = logits.astype(jnp.float32)
    return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, target)))


def adam(net: nnx.Module | None, spec: AdamSpec) -> optax.GradientTransformation:
    """Optax's Adam with the spec's values, in PyTorch's convention: m_hat / (sqrt(v_hat) + eps),
    eps added to the bias-corrected sqrt(v) (optax/_src/transform.py scale_by_adam with eps_root=0;
    tests/backends/test_optimizer.py checks it).

    net is not used: an Optax transformation binds to no parameters (its state is
    init(nnx.state(net, nnx.Param)), which the carry holds), so G and D share one, which the
    jitted iteration closes over.

    One correction: scale_by_adam forms the bias corrections 1 - b^t in float32, where
    float32(0.999) is 1.3e-8 off and 1 - b2^t cancels, so its step comes out 6.4e-6 (relative)
    off the spec's at t=1 and ~1e-5 for the first thousand steps (measured 1.3e-9 on a 2e-4 step,
    over the optimizer test's 1e-6 bound; PyTorch forms them in float64). The moments and the
    state (count, mu, nu) are scale_by_adam's; the update is re-formed from them with
    1 - b^t = -expm1(t log b), log b taken in float64: accurate to float32 rounding."""
    base = optax.scale_by_adam(b1=spec.beta1, b2=spec.beta2, eps=spec.eps, eps_root=0.0)
    log_b1, log_b2 = math.log(spec.beta1), math.log(spec.beta2)

    def update(grads, state, params=None):
        _, state = base.update(grads, state, params)  # its own update is unused (XLA drops it)
        t = state.count.astype(jnp.float32)
        c1, c2 = -jnp.expm1(t * log_b1), -jnp.expm1(t * log_b2)
        updates = jax.tree.map(lambda m, v: (m / c1) / (jnp.sqrt(v / c2) + spec.eps),
                               state.mu, state.nu)
        return updates, state

    parts = [optax.add_decayed_weights(spec.weight_decay)] if spec.weight_decay else []
    parts += [optax.GradientTransformation(base.init, update),
              optax.scale_by_learning_rate(spec.lr)]
    return optax.chain(*parts)


def nhwc(x: jax.Array) -> jax.Array:
    """The harness's NCHW images in Flax's layout (fused into the jitted function)."""
    return jnp.transpose(x, (0, 2, 3, 1))


def _apply(net, params, stats, x, train):
    """net(x) from its split state: (output, the batch statistics after the pass)."""
    # Fresh containers at this trace level: flax >= 0.11 states hold the Variables themselves,
    # and BN may not update a Variable made outside the grad/vjp being traced (TraceContextError).
    params, stats = jax.tree.map(lambda a: a, (params, stats))
    module = nnx.merge(net, params, stats)
    out = module(x, train=train)
    return out, nnx.state(module, nnx.BatchStat)


def _adam_step(tx, params, grads, opt_state):
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def spec_iteration(graphs, tx, spec: ModelSpec, carry: dict, real: jax.Array, z: jax.Array,
                   axis: str | None = None):
    """One iteration: (new carry, (loss_D, loss_G)). graphs: (G's, D's) nnx.GraphDef; real NCHW.
    axis: the mesh axis replicas' gradients and losses are averaged over (data parallel)."""
    gG, gD = graphs
    loss = spec.loss
    (g_params, g_stats), (d_params, d_stats) = carry["G"], carry["D"]
    mean = (lambda t: jax.lax.pmean(t, axis)) if axis else (lambda t: t)

    fake, pull_g, g_stats = jax.vjp(lambda p: _apply(gG, p, g_stats, z, True), g_params,
                                    has_aux=True)

    def loss_d(params, stats):
        out_real, stats = _apply(gD, params, stats, nhwc(real), True)
        out_fake, stats = _apply(gD, params, stats, jax.lax.stop_gradient(fake), True)
        return bce_with_logits(out_real, loss.real_label) + bce_with_logits(out_fake, loss.fake_label), stats

    (l_d, d_stats), d_grads = jax.value_and_grad(loss_d, has_aux=True)(d_params, d_stats)
    d_params, opt_d = _adam_step(tx, d_params, mean(d_grads), carry["opt"]["D"])

    def loss_g(images):
        out, stats = _apply(gD, d_params, d_stats, images, True)
        return bce_with_logits(out, loss.real_label), stats

    (l_g, d_stats), d_fake = jax.value_and_grad(loss_g, has_aux=True)(fake)
    g_grads, = pull_g(d_fake)
    g_params, opt_g = _adam_step(tx, g_params, mean(g_grads), carry["opt"]["G"])
    new = {"G": (g_params, g_stats), "D": (d_params, d_stats), "opt": {"G": opt_g, "D": opt_d}}
    return new, mean(jnp.stack([l_d, l_g]))


def gradients(graphs, spec: ModelSpec, carry: dict, real: jax.Array, z: jax.Array):
    """Losses and gradients at the carry's weights, BN in train mode, nothing updated: D's of
    loss_D, G's of loss_G through the same D. Returns ((loss_D, loss_G), (G grads, D grads))."""
    gG, gD = graphs
    loss = spec.loss
    (g_params, g_stats), (d_params, d_stats) = carry["G"], carry["D"]

    def loss_d(params):
        out_real, _ = _apply(gD, params, d_stats, nhwc(real), True)
        out_fake, _ = _apply(gD, params, d_stats, jax.lax.stop_gradient(fake), True)
        return bce_with_logits(out_real, loss.real_label) + bce_with_logits(out_fake, loss.fake_label)

    def loss_g(params):
        images, _ = _apply(gG, params, g_stats, z, True)
        return bce_with_logits(_apply(gD, d_params, d_stats, images, True)[0], loss.real_label)

    fake, _ = _apply(gG, g_params, g_stats, z, True)
    l_d, d_grads = jax.value_and_grad(loss_d)(d_params)
    l_g, g_grads = jax.value_and_grad(loss_g)(g_params)
    return (l_d, l_g), (g_grads, d_grads)


def forward(graph, params, stats, x: jax.Array, train: bool, images_in: bool) -> jax.Array:
    """A net's output without any state change (train: batch statistics, discarded)."""
    out, _ = _apply(graph, params, stats, nhwc(x) if images_in else x, train)
    return out


def apply_gradients(tx, params, grads, opt_state):
    """One Adam step with given gradients: (params, opt_state)."""
    return _adam_step(tx, params, grads, opt_state)


def losses_to_numpy(pending: list[jax.Array]) -> np.ndarray:
    return np.asarray(jnp.stack(pending), dtype=np.float64)  # the sync
