"""G and D as nn.Sequential, built from the spec's layer table.

Child names follow the canonical ones (deconv0, bn0, ...), so the key map in weights.py is a
rename of BN's weight/bias to gamma/beta and nothing else.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from common.spec import LayerSpec, ModelSpec


def _activation(layer: LayerSpec, spec: ModelSpec) -> nn.Module | None:
    return {"relu": lambda: nn.ReLU(inplace=True),
            "leaky_relu": lambda: nn.LeakyReLU(spec.leaky_slope, inplace=True),
            "tanh": nn.Tanh,
            "none": lambda: None}[layer.activation]()


def _build(layers: tuple[LayerSpec, ...], spec: ModelSpec) -> nn.Sequential:
    children: OrderedDict[str, nn.Module] = OrderedDict()
    for layer in layers:
        conv = nn.ConvTranspose2d if layer.kind == "deconv" else nn.Conv2d
        children[f"{layer.kind}{layer.index}"] = conv(layer.in_channels, layer.out_channels,
                                                      layer.kernel, layer.stride, layer.pad,
                                                      bias=False)
        if layer.batchnorm:
            children[f"bn{layer.index}"] = nn.BatchNorm2d(
                layer.out_channels, eps=spec.bn.eps, momentum=spec.bn.new_batch_weight)
        act = _activation(layer, spec)
        if act is not None:
            children[f"{layer.activation}{layer.index}"] = act
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
