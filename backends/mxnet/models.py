"""G and D as mx.sym graphs, built from the spec's layer table, and bound as the backend's three
Module objects (build; backend.py's docstring says why three).

Layer nodes carry the canonical layer names (deconv0, bn0, conv1, ...), so MXNet's parameter
names are `deconv0_weight`, `bn0_gamma`, `bn0_beta` and the auxiliary states `bn0_moving_mean`,
`bn0_moving_var`; weights.py maps those to the canonical keys.

Note on one-channel deconvolutions (G's last layer on mnist32). mxnet 1.9.1's oneDNN (MKLDNN)
kernels, measured: the input gradient of a Deconvolution with num_filter=1 fails at waitall()
("could not create a primitive descriptor for a reorder primitive"); a two-channel Deconvolution
whose weight is computed in the graph ([w, zeros]) segfaults in G's backward when that weight
needs a gradient; a two-channel one with a weight that needs none, and the weight gradient of the
one-channel one, both work. So such a layer is built from the parts that work:
  y = Deconvolution(stop_gradient(x), w)               value and weight gradient, one channel
  t = Deconvolution(x, stop_gradient([w, 0]))[:, :1]   the input gradient, through two channels
  out = y + (t - stop_gradient(t))                     t - t is exactly 0: out's value is y's
The zero block is an operator, not a parameter, so the parameter count and the canonical weights
are the spec's; channel 0 of t is the same sum as y, and the parity tests prove the whole exact.
The cost is one more forward of the smallest layer. Measured alternatives (full training steps,
batch 64 on mnist32, 2 CPU cores shared with other work, so indicative; four interleaved rounds):
this graph 140-330 img/s; the layer in float64 (mx.sym.cast, which leaves oneDNN for mxnet's own
kernel) 130-210 img/s; MXNET_MKLDNN_ENABLED=0 for the whole process 71-76 img/s. mxnet 1.9.1 has
no per-operator oneDNN switch. The same graph runs on a GPU, where it costs next to nothing and
needs no second variant.
"""
from __future__ import annotations

import contextlib

import mxnet as mx

from backends.base import layer_walk
from common.spec import LayerSpec, ModelSpec

# Data and label variable names of the modules (build binds them).
Z, IMAGES, LABEL = "z", "images", "label"


def one_channel_deconv(x: mx.sym.Symbol, layer: LayerSpec, geometry: dict) -> mx.sym.Symbol:
    """A Deconvolution to one channel that oneDNN can differentiate (the module docstring)."""
    name, k = layer.local_name, layer.kernel
    weight = mx.sym.Variable(f"{name}_weight", shape=(layer.in_channels, 1, k, k),
                             dtype="float32")
    value = mx.sym.Deconvolution(mx.sym.BlockGrad(x), weight=weight, num_filter=1, **geometry,
                                 name=f"{name}_value")
    padded_weight = mx.sym.concat(mx.sym.BlockGrad(weight),
                                  mx.sym.zeros(shape=(layer.in_channels, 1, k, k)), dim=1)
    padded = mx.sym.Deconvolution(x, weight=padded_weight, num_filter=2, **geometry,
                                  name=f"{name}_input_grad")
    through = mx.sym.slice_axis(padded, axis=1, begin=0, end=1)
    return mx.sym.elemwise_add(value, through - mx.sym.BlockGrad(through), name=name)


def _conv(x: mx.sym.Symbol, layer: LayerSpec) -> mx.sym.Symbol:
    k, name = layer.kernel, layer.local_name
    geometry = dict(kernel=(k, k), stride=(layer.stride,) * 2, pad=(layer.pad,) * 2, no_bias=True)
    if layer.kind == "conv":
        return mx.sym.Convolution(x, num_filter=layer.out_channels, **geometry, name=name)
    if layer.out_channels == 1:
        return one_channel_deconv(x, layer, geometry)
    return mx.sym.Deconvolution(x, num_filter=layer.out_channels, **geometry, name=name)


def _activation(x: mx.sym.Symbol, layer: LayerSpec, spec: ModelSpec) -> mx.sym.Symbol:
    name = layer.activation_local_name
    if layer.activation == "leaky_relu":  # MXNet's default slope is 0.25
        return mx.sym.LeakyReLU(x, act_type="leaky", slope=spec.leaky_slope, name=name)
    if layer.activation in ("relu", "tanh"):
        return mx.sym.Activation(x, act_type=layer.activation, name=name)
    return x


def _build(x: mx.sym.Symbol, table: tuple[LayerSpec, ...], spec: ModelSpec) -> mx.sym.Symbol:
    for layer in table:
        x = _conv(x, layer)
        if layer.batchnorm:
            # MXNet defaults: fix_gamma=True (gamma frozen at 1) and eps 1e-3; momentum is the
            # weight of the old running value, the spec's decay.
            x = mx.sym.BatchNorm(x, fix_gamma=False, eps=spec.bn.eps, momentum=spec.bn.decay,
                                 use_global_stats=False, name=layer.bn_local_name)
        x = _activation(x, layer, spec)
    return x


def generator(spec: ModelSpec) -> mx.sym.Symbol:
    """z (N, nz) -> images (N, C, H, W)."""
    z = mx.sym.reshape(mx.sym.Variable(Z), shape=(-1, spec.preset.nz, 1, 1))
    return _build(z, spec.generator, spec)


def bce_with_logits(logits: mx.sym.Symbol, target: mx.sym.Symbol) -> mx.sym.Symbol:
    """The spec's loss, batch mean: softplus(l) - l*t. MXNet's softrelu is log1p(exp(l)), and l
    itself above 20, so it never overflows; its gradient is sigmoid(l), which makes the loss's
    gradient exactly (sigmoid(l) - t)/N."""
    return mx.sym.mean(mx.sym.Activation(logits, act_type="softrelu") - logits * target)


def discriminator(spec: ModelSpec) -> mx.sym.Symbol:
    """(images, label) -> [loss, logits]: the batch-mean loss against `label` (one target per
    image), the head backward() starts from, and D's logits (N,), gradient-blocked, for callers.

    MakeLoss of the stable softplus form rather than LogisticRegressionOutput: the loss value and
    its gradient come from the same graph (LogisticRegressionOutput outputs sigmoid(l), from which
    the spec's loss cannot be recovered stably), and its gradient is already the batch mean, so
    the optimizer's rescale_grad stays 1 whatever the batch size (LogisticRegressionOutput's is
    per image and needs rescale_grad = 1/N tied to the bound batch)."""
    logits = mx.sym.reshape(_build(mx.sym.Variable(IMAGES), spec.discriminator, spec), shape=(-1,))
    loss = mx.sym.MakeLoss(bce_with_logits(logits, mx.sym.Variable(LABEL)), name="loss")
    return mx.sym.Group([loss, mx.sym.BlockGrad(logits, name="logits")])


class SpecInit(mx.init.Normal):
    """The spec's initialisation with MXNet's RNG (used only under --no-shared-init): weights
    N(0, init_std) (mx.init.Normal), gamma N(mean, std) instead of MXNet's constant 1; beta and
    the running statistics keep MXNet's 0 / 0 / 1, which are the spec's."""

    def __init__(self, spec: ModelSpec):
        super().__init__(spec.init_std)
        self._gamma = (spec.bn.gamma_init_mean, spec.bn.gamma_init_std)

    def _init_gamma(self, name, arr):
        mx.random.normal(*self._gamma, out=arr)


def bf16_graph(symbol: mx.sym.Symbol) -> mx.sym.Symbol:
    """The graph with MXNet AMP's bfloat16 casts (oneDNN's bf16 kernels on a CPU that has them):
    mx.contrib.amp.convert_symbol with MXNet's own bf16 operator lists (Convolution in bf16,
    Deconvolution and BN in float32), parameters and auxiliary states kept float32 (their
    dtype set after conversion, or binding cannot infer them through the casts). An ablation
    only, not a best path: 2x slower than float32 on mnist32, and on dcgan64 the process
    segfaults after a few steps (benchmarks/README.md#mxnets-and-chainers-none);
    Deconvolution in bf16 too segfaults in mxnet 1.9.1's oneDNN.

    Each weight reaches its cast through an identity: amp_cast's backward ignores grad_req
    'add' (kAddTo), so D's accumulated weight gradients stayed exactly zero (measured) and only
    BN trained; behind the identity the cast writes, and the identity adds."""
    from mxnet.contrib import amp
    weights = [n for n in symbol.list_arguments() if n.endswith("_weight")]
    symbol = symbol(**{n: mx.sym.identity(mx.sym.Variable(n, dtype="float32"), name=f"{n}_to_cast")
                       for n in weights})
    converted = amp.convert_symbol(symbol, target_dtype="bfloat16")
    internals = converted.get_internals()
    for name in converted.list_arguments() + converted.list_auxiliary_states():
        internals[name]._set_attr(__dtype__="0")  # noqa: SLF001 - float32; no public setter
    return converted


def build(spec: ModelSpec, contexts: list, batch: int | None = None, bf16: bool = False):
    """(G, D, D_G): the three modules bound on `contexts` for a batch of `batch` (default one
    image per context; forward reshapes to the batch it is given), their parameters drawn by
    SpecInit. D's parameter gradients accumulate (grad_req 'add'); D_G is bound on D's arrays
    (shared_module) without parameter gradients. No optimizer yet (parallel.init_optimizer).
    bf16: both graphs through bf16_graph (an ablation)."""
    p = spec.preset
    cast = bf16_graph if bf16 else (lambda symbol: symbol)
    bound = batch or len(contexts)
    G = mx.mod.Module(cast(generator(spec)), data_names=(Z,), label_names=None, context=contexts)
    G.bind(data_shapes=[(Z, (bound, p.nz))], for_training=True)
    G.init_params(initializer=SpecInit(spec))

    d_symbol = cast(discriminator(spec))
    shapes = dict(data_shapes=[(IMAGES, (bound, p.channels, p.image_size, p.image_size))],
                  label_shapes=[(LABEL, (bound,))], for_training=True, inputs_need_grad=True)
    d_params = [n for n in d_symbol.list_arguments() if n not in (IMAGES, LABEL)]
    data_grads = {IMAGES: "write", LABEL: "null"}
    D = mx.mod.Module(d_symbol, data_names=(IMAGES,), label_names=(LABEL,), context=contexts)
    D.bind(**shapes, grad_req=dict(dict.fromkeys(d_params, "add"), **data_grads))
    D.init_params(initializer=SpecInit(spec))
    D_G = mx.mod.Module(d_symbol, data_names=(IMAGES,), label_names=(LABEL,), context=contexts)
    D_G.bind(**shapes, shared_module=D, grad_req=dict(dict.fromkeys(d_params, "null"), **data_grads))
    return G, D, D_G


def executors(module: mx.mod.Module) -> list[mx.executor.Executor]:
    """One executor per context (data parallel), context 0's first."""
    return module._exec_group.execs  # noqa: SLF001


def contexts(module: mx.mod.Module) -> list[mx.Context]:
    """The contexts the module is bound to (build's), context 0's first."""
    return module._context  # noqa: SLF001 - Module has no public getter for it


def executor(module: mx.mod.Module) -> mx.executor.Executor:
    """The module's one executor (one context): its arg_dict, aux_dict and grad_dict are the live
    arrays. Module.get_params() returns host copies refreshed only after update(), so they miss
    the running statistics that backward() changes."""
    return module._exec_group.execs[0]  # noqa: SLF001 - as the Module API tutorial does


def param_grads(module: mx.mod.Module) -> dict[str, mx.nd.NDArray]:
    """{parameter name: its live gradient array} (context 0's)."""
    grad_dict = executor(module).grad_dict
    return {name: grad_dict[name] for name in module._param_names}  # noqa: SLF001


def layers(nets: dict[str, mx.mod.Module], spec: ModelSpec):
    """(spec name, the layer's output node) for every conv/deconv and BN, from the bound symbols."""
    internals = {net: module.symbol.get_internals() for net, module in nets.items()}
    return layer_walk(internals, spec, lambda nodes, name: nodes[f"{name}_output"])


@contextlib.contextmanager
def frozen_running_statistics(*nets: mx.mod.Module):
    """Passes inside (backward passes: MXNet updates BN's running statistics there) leave every
    BN's running statistics (auxiliary states, context 0's) as they were."""
    aux = [dict(executor(m).aux_dict) for m in nets]
    saved = [{k: v.copy() for k, v in arrays.items()} for arrays in aux]
    try:
        yield
    finally:
        for arrays, copies in zip(aux, saved):
            for k, v in arrays.items():
                copies[k].copyto(v)
