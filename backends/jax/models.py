"""G and D as Flax NNX modules, built from the spec's layer table.

Layers are attributes named by the canonical local names (deconv0, bn0, conv1, ...), so the key
map in weights.py is a rename of the tensors only. Inside, images are NHWC (XLA:CPU's and
Flax's layout); the backend transposes NCHW at its boundary.

Every spec value is set where Flax's default differs:
- BN: Flax's `momentum` is the old value's weight (spec.bn.decay, Flax default 0.99), epsilon
  spec.bn.eps (Flax 1e-5); the batch variance is the two-pass mean((x - mean)^2)
  (use_fast_variance=False: Flax's default E[x^2] - E[x]^2 loses float32 digits). The running
  variance takes that biased variance (flax/nnx/nn/normalization.py, `_compute_stats` and the
  `ra_var` update): running_var_unbiased is False, tested in tests/backends/test_backend_parity.py.
- Convolutions without bias; weights N(0, init_std), BN gamma N(1, gamma_init_std), beta 0.
- The transposed convolution: Flax's ConvTranspose pads the stride-dilated input, where PyTorch's
  `padding=p` crops the full output; the same result is padding k-1-p on each side with
  transpose_kernel=True (the kernel flipped and its in/out swapped: the gradient of a conv, which
  is what PyTorch's ConvTranspose2d computes). Proven by forward parity against the float64
  oracle (tests/backends/test_backend_parity.py), not assumed.
- LeakyReLU slope spec.leaky_slope (jax.nn.leaky_relu defaults to 0.01).
"""
from __future__ import annotations

import contextlib
import functools
from typing import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from common.spec import LayerSpec, ModelSpec

Observe = Callable[[str, jax.Array], None]  # (spec name, NHWC output): layer_output_shapes' hook


def _conv(layer: LayerSpec, spec: ModelSpec, rngs: nnx.Rngs, dtype) -> nnx.Module:
    k, s, p = layer.kernel, layer.stride, layer.pad
    init = nnx.initializers.normal(spec.init_std)
    if layer.kind == "conv":
        return nnx.Conv(layer.in_channels, layer.out_channels, (k, k), strides=(s, s),
                        padding=((p, p), (p, p)), use_bias=False, kernel_init=init,
                        dtype=dtype, rngs=rngs)
    q = k - 1 - p  # PyTorch's crop p of the full output, as padding of the dilated input
    return ConvTranspose(layer.in_channels, layer.out_channels, (k, k), strides=(s, s),
                         padding=((q, q), (q, q)), transpose_kernel=True, use_bias=False,
                         kernel_init=init, dtype=dtype, rngs=rngs)


_NHWC = ("NHWC", "HWIO", "NHWC")


def _conv_nhwc(x, kernel, stride: int, pad: int):
    return jax.lax.conv_general_dilated(x, kernel, (stride, stride), ((pad, pad), (pad, pad)),
                                        dimension_numbers=_NHWC)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_transpose(x, kernel, stride: int, pad: int):
    """PyTorch's ConvTranspose2d(stride, padding=pad) on NHWC with a (kh, kw, out, in) kernel:
    the adjoint of the conv with that kernel as HWIO, stride and pad.

    Its gradients are written as that conv's own (custom_vjp): JAX's automatic kernel gradient
    of lax.conv_transpose is a convolution XLA:CPU runs on a slow generic path, measured 2.49 s
    against 0.17 s for this form (G.deconv2's forward and backward, batch 64, 2-core CPU, loaded);
    the input gradient is the strided conv itself, the kernel gradient that conv's kernel
    gradient with the roles of input and cotangent swapped. Same values to float32 rounding
    (the gradient tests hold it to GRAD_RTOL)."""
    q = kernel.shape[0] - 1 - pad
    return jax.lax.conv_transpose(x, kernel, (stride, stride), ((q, q), (q, q)),
                                  dimension_numbers=_NHWC, transpose_kernel=True)


def _conv_transpose_fwd(x, kernel, stride, pad):
    return conv_transpose(x, kernel, stride, pad), (x, kernel)


def _conv_transpose_bwd(stride, pad, residuals, grad_out):
    x, kernel = residuals
    grad_x, pull_kernel = jax.vjp(lambda k: _conv_nhwc(grad_out, k, stride, pad), kernel)
    return grad_x, pull_kernel(x)[0]


conv_transpose.defvjp(_conv_transpose_fwd, _conv_transpose_bwd)


class ConvTranspose(nnx.ConvTranspose):
    """Flax's ConvTranspose (its kernel variable, shape and initialisation) computing through
    conv_transpose above: PyTorch's padding, and gradients on XLA:CPU's fast path."""

    def __call__(self, x):
        kernel = self.kernel[...]
        if self.dtype is not None:
            x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
        (q, _), _ = self.padding
        return conv_transpose(x, kernel, self.strides[0], kernel.shape[0] - 1 - q)


def _batchnorm(layer: LayerSpec, spec: ModelSpec, rngs: nnx.Rngs, dtype, axis) -> nnx.BatchNorm:
    bn = spec.bn

    def gamma_init(key, shape, dtype=jnp.float32):
        return bn.gamma_init_mean + bn.gamma_init_std * jax.random.normal(key, shape, dtype)

    return nnx.BatchNorm(layer.out_channels, momentum=bn.decay, epsilon=bn.eps,
                         use_fast_variance=False, scale_init=gamma_init,
                         bias_init=nnx.initializers.zeros_init(), dtype=dtype, axis_name=axis,
                         rngs=rngs)


def _activation(layer: LayerSpec, spec: ModelSpec):
    return {"relu": jax.nn.relu,
            "leaky_relu": lambda x: jax.nn.leaky_relu(x, spec.leaky_slope),
            "tanh": jnp.tanh,
            "none": lambda x: x}[layer.activation]


class Net(nnx.Module):
    """One of G and D: the spec's layers in order, each conv/deconv, BN and activation."""

    def __init__(self, table: tuple[LayerSpec, ...], spec: ModelSpec, rngs: nnx.Rngs,
                 dtype=None, bn_axis=None):
        self.table = table
        self.spec = spec
        for layer in table:
            setattr(self, layer.local_name, _conv(layer, spec, rngs, dtype))
            if layer.batchnorm:
                setattr(self, layer.bn_local_name, _batchnorm(layer, spec, rngs, dtype, bn_axis))

    def __call__(self, x: jax.Array, train: bool, observe: Observe | None = None) -> jax.Array:
        """x NHWC. train: BN with batch statistics, updating its running statistics."""
        for layer in self.table:
            x = getattr(self, layer.local_name)(x)
            if observe:
                observe(layer.name, x)
            if layer.batchnorm:
                x = getattr(self, layer.bn_local_name)(x, use_running_average=not train)
                if observe:
                    observe(layer.bn_name, x)
            x = _activation(layer, self.spec)(x)
        return x


class Generator(Net):
    def __init__(self, spec: ModelSpec, rngs: nnx.Rngs, dtype=None, bn_axis=None):
        super().__init__(spec.generator, spec, rngs, dtype, bn_axis)

    def __call__(self, z, train, observe=None):
        return super().__call__(z.reshape(z.shape[0], 1, 1, -1), train, observe)


class Discriminator(Net):
    def __init__(self, spec: ModelSpec, rngs: nnx.Rngs, dtype=None, bn_axis=None):
        super().__init__(spec.discriminator, spec, rngs, dtype, bn_axis)

    def __call__(self, x, train, observe=None):
        return super().__call__(x, train, observe).reshape(-1)  # one logit per image


def build(spec: ModelSpec, seed: int = 0, dtype=None, bn_axis: str | None = None
          ) -> tuple[Generator, Discriminator]:
    """G and D with the spec's initialisation drawn from JAX's RNG (canonical weights loaded
    afterwards replace it). dtype: the compute dtype (bf16 fast path); parameters stay float32.
    bn_axis: the mesh axis BN's statistics are averaged over (synchronised BN), None per replica."""
    rngs = nnx.Rngs(seed)
    return Generator(spec, rngs, dtype, bn_axis), Discriminator(spec, rngs, dtype, bn_axis)


def layers(nets: dict[str, Net], spec: ModelSpec):
    """(spec name, Flax module) for every conv/deconv and BN."""
    for layer in spec.layers:
        net = nets[layer.net]
        yield layer.name, getattr(net, layer.local_name)
        if layer.batchnorm:
            yield layer.bn_name, getattr(net, layer.bn_local_name)


def variables(net: Net) -> dict[str, nnx.Variable]:
    """{'deconv0.kernel': Variable, 'bn0.scale': ..., 'bn0.mean': ...}: every variable of net by
    layer name, what weights.py maps the canonical keys to."""
    out = {}
    for layer in net.table:
        out[f"{layer.local_name}.kernel"] = getattr(net, layer.local_name).kernel
        if layer.batchnorm:
            bn = getattr(net, layer.bn_local_name)
            out.update({f"{layer.bn_local_name}.{v}": getattr(bn, v)
                        for v in ("scale", "bias", "mean", "var")})
    return out


@contextlib.contextmanager
def frozen_running_statistics(*nets: Net):
    """Train-mode passes inside leave every BN's running statistics as they were."""
    saved = [(net, nnx.state(net, nnx.BatchStat)) for net in nets]
    try:
        yield
    finally:
        for net, state in saved:
            nnx.update(net, state)
