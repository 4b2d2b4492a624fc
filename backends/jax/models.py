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

from backends.base import layer_walk
from common.spec import LayerSpec, ModelSpec

Observe = Callable[[str, jax.Array], None]  # (spec name, NHWC output): layer_output_shapes' hook


def _conv(layer: LayerSpec, spec: ModelSpec, rngs: nnx.Rngs, dtype, phases: bool = False) -> nnx.Module:
    k, s, p = layer.kernel, layer.stride, layer.pad
    init = nnx.initializers.normal(spec.init_std)
    if layer.kind == "conv":
        cls = PhaseGradConv if phases and by_phases(s, k, p) else nnx.Conv
        return cls(layer.in_channels, layer.out_channels, (k, k), strides=(s, s),
                   padding=((p, p), (p, p)), use_bias=False, kernel_init=init,
                   dtype=dtype, rngs=rngs)
    q = k - 1 - p  # PyTorch's crop p of the full output, as padding of the dilated input
    module = ConvTranspose(layer.in_channels, layer.out_channels, (k, k), strides=(s, s),
                           padding=((q, q), (q, q)), transpose_kernel=True, use_bias=False,
                           kernel_init=init, dtype=dtype, rngs=rngs)
    module.phases = phases and by_phases(s, k, p)
    return module


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


# The `onednn` fast path's form of the input-dilated convolutions. XLA:CPU's classic runtime
# rewrites a convolution to oneDNN's only without an input (lhs) dilation; a stride-2 transposed
# convolution and a strided convolution's input gradient have one, so they stayed in Eigen, in
# float32 even under bf16: 56% of the bf16 step at mnist32, 46% at dcgan64 (ONEDNN_VERBOSE exec
# times, docs/jax.md). Written as four stride-1 convolutions, one per output phase, oneDNN runs
# them. The spec path keeps lax.conv_transpose: parity is proven on it.
_PHASE_TAPS = {0: ((3, 1), (1, 0)), 1: ((2, 0), (0, 1))}  # output parity -> (kernel taps, padding)


def by_phases(stride: int, kernel: int, pad: int) -> bool:
    """Whether transpose_by_phases covers this layer: the DCGAN's up/down-sampling one."""
    return (stride, kernel, pad) == (2, 4, 1)


def transpose_by_phases(x, kernel, stride: int, pad: int):
    """conv_transpose(x, kernel, 2, 1) for a 4x4 kernel, as four stride-1 convolutions.

    Output row 2m+r of the adjoint of a stride-2, pad-1 convolution collects the kernel taps t
    with t = r+1 (mod 2): y[2m] = x[m] k[1] + x[m-1] k[3], y[2m+1] = x[m+1] k[0] + x[m] k[2]. Each
    (row, column) parity is a stride-1 correlation of x with those 2x2 taps (the kernel's in and
    out swapped), and the four results interleave into the 2H x 2W output. The same sums as
    conv_transpose's, in another order (equal to float32 rounding: tests/backends/test_jax.py)."""
    assert by_phases(stride, kernel.shape[0], pad), (stride, kernel.shape, pad)
    w = jnp.swapaxes(kernel, 2, 3)
    rows = []
    for rh in (0, 1):
        th, ph = _PHASE_TAPS[rh]
        cols = [jax.lax.conv_general_dilated(x, w[jnp.array(th)][:, jnp.array(tw)], (1, 1), (ph, pw),
                                             dimension_numbers=_NHWC)
                for tw, pw in (_PHASE_TAPS[rw] for rw in (0, 1))]
        rows.append(jnp.stack(cols, axis=3))  # (N, H, W, column parity, C)
    out = jnp.stack(rows, axis=2)  # (N, H, row parity, W, column parity, C)
    n, h, _, wd, _, c = out.shape
    return out.reshape(n, 2 * h, 2 * wd, c)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_transpose_by_phases(x, kernel, stride: int, pad: int):
    """conv_transpose with its forward by phases; its gradients are conv_transpose's."""
    return transpose_by_phases(x, kernel, stride, pad)


conv_transpose_by_phases.defvjp(lambda x, kernel, stride, pad: (transpose_by_phases(x, kernel, stride, pad),
                                                               (x, kernel)),
                                _conv_transpose_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_by_phases(x, kernel, stride: int, pad: int):
    """The strided convolution, its input gradient by phases (the adjoint, transpose_by_phases)
    and its kernel gradient JAX's own."""
    return _conv_nhwc(x, kernel, stride, pad)


def _conv_by_phases_bwd(stride, pad, residuals, grad_out):
    x, kernel = residuals
    _, pull_kernel = jax.vjp(lambda k: _conv_nhwc(x, k, stride, pad), kernel)
    return transpose_by_phases(grad_out, kernel, stride, pad), pull_kernel(grad_out)[0]


conv_by_phases.defvjp(lambda x, kernel, stride, pad: (_conv_nhwc(x, kernel, stride, pad), (x, kernel)),
                      _conv_by_phases_bwd)


def _compute(module, x):
    """x and the module's kernel in its compute dtype (the bf16 fast path), as Flax's own do."""
    kernel = module.kernel[...]
    if module.dtype is not None:
        x, kernel = x.astype(module.dtype), kernel.astype(module.dtype)
    return x, kernel


class ConvTranspose(nnx.ConvTranspose):
    """Flax's ConvTranspose (its kernel variable, shape and initialisation) computing through
    conv_transpose above: PyTorch's padding, and gradients on XLA:CPU's fast path; `phases` (the
    onednn path) its forward by transpose_by_phases."""
    phases = False

    def __call__(self, x):
        x, kernel = _compute(self, x)
        (q, _), _ = self.padding
        op = conv_transpose_by_phases if self.phases else conv_transpose
        return op(x, kernel, self.strides[0], kernel.shape[0] - 1 - q)


class PhaseGradConv(nnx.Conv):
    """Flax's Conv, its input gradient by phases (the onednn path; conv_by_phases)."""

    def __call__(self, x):
        x, kernel = _compute(self, x)
        return conv_by_phases(x, kernel, self.strides[0], self.padding[0][0])


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
                 dtype=None, bn_axis=None, phases: bool = False):
        self.table = table
        self.spec = spec
        for layer in table:
            setattr(self, layer.local_name, _conv(layer, spec, rngs, dtype, phases))
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
    def __init__(self, spec: ModelSpec, rngs: nnx.Rngs, dtype=None, bn_axis=None, phases=False):
        super().__init__(spec.generator, spec, rngs, dtype, bn_axis, phases)

    def __call__(self, z, train, observe=None):
        return super().__call__(z.reshape(z.shape[0], 1, 1, -1), train, observe)


class Discriminator(Net):
    def __init__(self, spec: ModelSpec, rngs: nnx.Rngs, dtype=None, bn_axis=None, phases=False):
        super().__init__(spec.discriminator, spec, rngs, dtype, bn_axis, phases)

    def __call__(self, x, train, observe=None):
        return super().__call__(x, train, observe).reshape(-1)  # one logit per image


def build(spec: ModelSpec, seed: int = 0, dtype=None, bn_axis: str | None = None,
          phases: bool = False) -> tuple[Generator, Discriminator]:
    """G and D with the spec's initialisation drawn from JAX's RNG (canonical weights loaded
    afterwards replace it). dtype: the compute dtype (bf16 fast path); parameters stay float32.
    bn_axis: the mesh axis BN's statistics are averaged over (synchronised BN), None per replica.
    phases: input-dilated convolutions as stride-1 phases (the onednn fast path)."""
    rngs = nnx.Rngs(seed)
    return (Generator(spec, rngs, dtype, bn_axis, phases),
            Discriminator(spec, rngs, dtype, bn_axis, phases))


def layers(nets: dict[str, Net], spec: ModelSpec):
    """(spec name, Flax module) for every conv/deconv and BN."""
    return layer_walk(nets, spec, getattr)


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
