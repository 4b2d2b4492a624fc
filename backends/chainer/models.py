"""G and D as chainer.Chain, links built in init_scope from the spec's layer table.

Links are named as the canonical layers (deconv0, bn0, ...), so the key map in weights.py is a
rename of BN's running statistics (avg_mean/avg_var) and W for weight, nothing else.
"""
from __future__ import annotations

import contextlib
import warnings

import numpy as np

from backends.base import layer_walk
from backends.compat import prepare_chainer
from common.spec import LayerSpec, ModelSpec

chainer = prepare_chainer()
import chainer.functions as F  # noqa: E402
import chainer.links as L  # noqa: E402
from chainer import initializers  # noqa: E402


class _NormalAround(initializers.Normal):
    """N(mean, scale): chainer's Normal draws around 0 only (BN gamma is N(1, 0.02))."""

    def __init__(self, mean: float, scale: float, rng: np.random.RandomState):
        super().__init__(scale, rng=rng)
        self.mean = mean

    def __call__(self, array):
        super().__call__(array)
        array += self.mean


def _activation(kind: str, spec: ModelSpec):
    return {"relu": F.relu,
            "leaky_relu": lambda h: F.leaky_relu(h, slope=spec.leaky_slope),
            "tanh": F.tanh,
            "none": lambda h: h}[kind]


class _ConvNet(chainer.Chain):
    """The layer table as links (conv/deconv without bias, BN with the spec's eps and decay set
    explicitly: chainer's defaults are eps 2e-5, decay 0.9), applied in order."""

    def __init__(self, table: tuple[LayerSpec, ...], spec: ModelSpec, rng: np.random.RandomState,
                 comm=None):
        super().__init__()
        batchnorm = _batchnorm_link(comm)
        self._layers = table
        self._activations = [_activation(layer.activation, spec) for layer in table]
        # The links' names, made once: a name made afresh each forward is held by CPython 3.11's
        # type attribute cache, up to 4096 of them (~0.2 MiB of RSS over the first 2,000
        # iterations of a soak, measured: benchmarks/README.md#memory-soak).
        self._names = [(layer.local_name, layer.bn_local_name) for layer in table]
        with self.init_scope():
            for layer in table:
                link = L.Deconvolution2D if layer.kind == "deconv" else L.Convolution2D
                setattr(self, layer.local_name, link(
                    layer.in_channels, layer.out_channels, layer.kernel, layer.stride, layer.pad,
                    nobias=True, initialW=initializers.Normal(spec.init_std, rng=rng)))
                if layer.batchnorm:
                    setattr(self, layer.bn_local_name, batchnorm(
                        layer.out_channels, decay=spec.bn.decay, eps=spec.bn.eps,
                        initial_gamma=_NormalAround(spec.bn.gamma_init_mean,
                                                    spec.bn.gamma_init_std, rng),
                        initial_beta=0))

    def batchnorms(self) -> list:
        return [getattr(self, layer.bn_local_name) for layer in self._layers if layer.batchnorm]

    def forward(self, h):
        for (name, bn_name), activation in zip(self._names, self._activations):
            h = getattr(self, name)(h)
            if bn_name:
                h = getattr(self, bn_name)(h)
            h = activation(h)
        return h


def _batchnorm_link(comm):
    """BN over the replica's batch (chainer's link), or, given a ChainerMN communicator (--sync-bn),
    over the global batch: MultiNodeBatchNormalization allreduces the batch mean and mean square
    in the forward pass, and gamma's and beta's gradient sums in the backward. Same parameters,
    running statistics and names, so the weight map is unchanged."""
    if comm is None:
        return L.BatchNormalization
    from chainermn.links import MultiNodeBatchNormalization

    def link(size, **kwargs):
        with warnings.catch_warnings():  # it is marked experimental (a FutureWarning per link)
            warnings.simplefilter("ignore", FutureWarning)
            return MultiNodeBatchNormalization(size, comm, **kwargs)
    return link


class Generator(_ConvNet):
    def __init__(self, spec: ModelSpec, rng: np.random.RandomState, comm=None):
        super().__init__(spec.generator, spec, rng, comm)
        self.nz = spec.preset.nz

    def forward(self, z):
        return super().forward(F.reshape(z, (-1, self.nz, 1, 1)))


class Discriminator(_ConvNet):
    def __init__(self, spec: ModelSpec, rng: np.random.RandomState, comm=None):
        super().__init__(spec.discriminator, spec, rng, comm)

    def forward(self, x):
        # One logit per image; the sigmoid lives in the loss.
        return F.reshape(super().forward(x), (-1,))


def build(spec: ModelSpec, rng: np.random.RandomState, comm=None) -> tuple[Generator, Discriminator]:
    """G and D with the spec's initialisation drawn from rng; comm: a ChainerMN communicator
    for --sync-bn (_batchnorm_link)."""
    return Generator(spec, rng, comm), Discriminator(spec, rng, comm)


def layers(nets: dict, spec: ModelSpec):
    """(spec name, link) for every conv/deconv and BN (links share the canonical names)."""
    return layer_walk(nets, spec, getattr)


@contextlib.contextmanager
def frozen_running_statistics(*nets):
    """Train-mode forwards inside leave every BN's running statistics as they were (Chainer's BN
    link always updates them in train mode)."""
    saved = [(bn, bn.avg_mean.copy(), bn.avg_var.copy()) for net in nets for bn in net.batchnorms()]
    try:
        yield
    finally:
        for bn, mean, var in saved:
            bn.avg_mean[...], bn.avg_var[...] = mean, var
