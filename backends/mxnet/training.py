"""SPEC.md's iteration on the three modules (models.build), the Adam it uses and its loss. The
loop around it is BackendBase.fetching_loop (losses fetched every `fetch_every` steps).

MXNet updates BN running statistics in the *backward* pass (measured in 1.9.1, with and without
oneDNN; forward with is_train=True leaves them alone), with the biased batch variance. Every
train-mode forward of the iteration is followed by its backward, so G's BN is updated once and
D's three times (real, fake, fake through the updated D), in that order."""
from __future__ import annotations

import mxnet as mx
import numpy as np

from backends.mxnet import models, parallel
from common.spec import AdamSpec


def adam(net: mx.mod.Module, spec: AdamSpec) -> mx.optimizer.Adam:
    """MXNet's Adam on the module net, through Module.init_optimizer over the module's contexts
    (parallel.init_optimizer: the kvstore, updates on the contexts), with the spec's values as
    _hyperparameters gives them; returns the mx.optimizer.Adam the module created and holds."""
    parallel.init_optimizer(net, models.contexts(net), _hyperparameters(spec))
    return net._optimizer  # noqa: SLF001 - Module has no public getter for it


def _hyperparameters(adam: AdamSpec) -> dict:
    """Module.init_optimizer's optimizer_params for mxnet's adam with the spec's values.

    mxnet's adam_update operator takes beta1, beta2, epsilon and lr as float32, so it computes
    m with (1 - f32(beta1)) and v with (1 - f32(beta2)); for beta2 = 0.999 that factor is
    0.000999987, and every update comes out 6.4e-6 (relative) larger than the spec's Adam
    (measured, tests/backends/test_mxnet.py). m and v are linear in those factors (r1, r2 below) at every
    step, so lr·sqrt(r2)/r1 and epsilon·sqrt(r2) give exactly the spec's update, still in the
    folded convention (bias correction in the step size, computed by mx.optimizer.Adam in Python
    from the exact beta1 and beta2).
    Also: rescale_grad 1, as the loss is already a batch mean (Module's default is 1/batch); no
    clipping (clip_gradient None, the default); lazy_update concerns sparse gradients only, off
    to say so."""
    f32 = np.float32
    r1 = float(1 - f32(adam.beta1)) / (1 - adam.beta1)
    r2 = float(1 - f32(adam.beta2)) / (1 - adam.beta2)
    return {"learning_rate": adam.lr * np.sqrt(r2) / r1, "epsilon": adam.eps * np.sqrt(r2),
            "beta1": adam.beta1, "beta2": adam.beta2, "wd": adam.weight_decay,
            "rescale_grad": 1.0, "clip_gradient": None, "lazy_update": False}


def bce_with_logits(logits: mx.sym.Symbol, target: mx.sym.Symbol) -> mx.sym.Symbol:
    """The spec's loss is a node of D's graph in MXNet (MakeLoss), so it is built where D is
    (models.bce_with_logits); named here too, where every backend's training.py names its loss."""
    return models.bce_with_logits(logits, target)


def generator_forward(G: mx.mod.Module, z: mx.nd.NDArray) -> mx.nd.NDArray:
    """G(z) in train mode: the one G pass of the iteration (its output buffer is G's own,
    overwritten only by G's next forward)."""
    G.forward(mx.io.DataBatch([z]), is_train=True)
    return G.get_outputs()[0]


def discriminator_backward(D: mx.mod.Module, real, fake, real_t, fake_t) -> mx.nd.NDArray:
    """loss_D's parameter gradients into D's (accumulating) gradient arrays; returns loss_D."""
    for exe in models.executors(D):
        for name in D._param_names:  # noqa: SLF001
            exe.grad_dict[name][:] = 0
    loss_d = None
    for images, target in ((real, real_t), (fake, fake_t)):
        D.forward(mx.io.DataBatch([images], [target]), is_train=True)
        D.backward()
        # One batch-mean loss per context (merged in order): their mean is the global batch's.
        loss = D.get_outputs()[0].mean()
        loss_d = loss if loss_d is None else loss_d + loss
    return loss_d


def generator_backward(G: mx.mod.Module, D_G: mx.mod.Module, fake, real_t) -> mx.nd.NDArray:
    """loss_G's gradients into G's gradient arrays, through D_G (D's current weights, no
    D weight gradients): D's input gradient is G's output gradient. Returns loss_G."""
    D_G.forward(mx.io.DataBatch([fake], [real_t]), is_train=True)
    D_G.backward()
    loss_g = D_G.get_outputs()[0].mean()
    G.backward(D_G.get_input_grads())
    return loss_g


def spec_iteration(G, D, D_G, real, z, real_t, fake_t) -> tuple[mx.nd.NDArray, mx.nd.NDArray]:
    """SPEC.md's iteration, queued on the engine; returns the losses without a sync."""
    fake = generator_forward(G, z)
    loss_d = discriminator_backward(D, real, fake, real_t, fake_t)
    D.update()
    loss_g = generator_backward(G, D_G, fake, real_t)
    G.update()
    return loss_d, loss_g


def losses_to_numpy(pending) -> np.ndarray:
    mx.nd.waitall()  # the steps' last updates too, not just the losses
    return mx.nd.stack(*[mx.nd.concat(d, g, dim=0) for d, g in pending]).asnumpy()
