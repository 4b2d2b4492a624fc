"""G and D as nn.Sequential, built from the spec's layer table.

Child names follow the canonical ones (deconv0, bn0, ...), so the key map in weights.py is a
rename of BN's weight/bias to gamma/beta and nothing else.
"""
from __future__ import annotations

import contextlib
from collections import OrderedDict

import torch
from torch import nn

from backends.base import layer_walk
from common.spec import LayerSpec, ModelSpec


def _activation(layer: LayerSpec, spec: ModelSpec) -> nn.Module | None:
    return {"relu": lambda: nn.ReLU(inplace=True),
            "leaky_relu": lambda: nn.LeakyReLU(spec.leaky_slope, inplace=True),
            "tanh": nn.Tanh,
            "none": lambda: None}[layer.activation]()


def _build(table: tuple[LayerSpec, ...], spec: ModelSpec) -> nn.Sequential:
    children: OrderedDict[str, nn.Module] = OrderedDict()
    for layer in table:
        conv = nn.ConvTranspose2d if layer.kind == "deconv" else nn.Conv2d
        children[layer.local_name] = conv(layer.in_channels, layer.out_channels,
                                          layer.kernel, layer.stride, layer.pad, bias=False)
        if layer.batchnorm:
            children[layer.bn_local_name] = nn.BatchNorm2d(
                layer.out_channels, eps=spec.bn.eps, momentum=spec.bn.new_batch_weight)
        act = _activation(layer, spec)
        if act is not None:
            children[layer.activation_local_name] = act
    return nn.Sequential(children)


class Generator(nn.Module):
    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.nz = spec.preset.nz
        self.net = _build(spec.generator, spec)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(-1, self.nz, 1, 1))


class Discriminator(nn.Module):
    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.net = _build(spec.discriminator, spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1)  # one logit per image; the sigmoid lives in the loss


def init_weights(module: nn.Module, spec: ModelSpec) -> None:
    """The spec's initialisation with torch's RNG (used only under --no-shared-init)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, spec.init_std)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, spec.bn.gamma_init_mean, spec.bn.gamma_init_std)
            nn.init.zeros_(m.bias)
            m.reset_running_stats()


def build(spec: ModelSpec) -> tuple[Generator, Discriminator]:
    """G and D with the spec's initialisation drawn from torch's RNG (canonical weights loaded
    afterwards replace it)."""
    G, D = Generator(spec), Discriminator(spec)
    init_weights(G, spec)
    init_weights(D, spec)
    return G, D


def layers(nets: dict[str, nn.Module], spec: ModelSpec):
    """(spec name, torch module) for every conv/deconv and BN: children share the names."""
    return layer_walk({name: m.net for name, m in nets.items()}, spec, getattr)


@contextlib.contextmanager
def frozen_running_statistics(*nets: nn.Module):
    """Train-mode passes inside leave every BN's running statistics (and batch count) as they were."""
    saved = [(net, {k: v.clone() for k, v in net.state_dict().items()
                    if "running" in k or "num_batches" in k}) for net in nets]
    try:
        yield
    finally:
        for net, state in saved:
            net.load_state_dict(state, strict=False)


@contextlib.contextmanager
def bn_mode(net: nn.Module, train: bool):
    """BN with batch statistics (train=True, the running statistics frozen) or running
    statistics, restoring the module's mode afterwards."""
    was_training = net.training
    net.train(train)
    try:
        with frozen_running_statistics(*([net] if train else [])):
            yield
    finally:
        net.train(was_training)
