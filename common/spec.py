"""The shared DCGAN spec (docs/SPEC.md), encoded once.

Backends read every number from here and never restate one. Where a framework's default differs
(BN eps/momentum, LeakyReLU slope, Adam eps), the backend sets the value from these objects.
The layer table (`ModelSpec.layers`) is derived from the preset, and both the backends and the
canonical weight format (common/canonical.py) are built from it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

Net = Literal["G", "D"]


@dataclass(frozen=True)
class Preset:
    name: str
    image_size: int
    channels: int
    nz: int = 100
    ngf: int = 64
    ndf: int = 64

    def __post_init__(self):
        n = self.image_size
        if n < 16 or n & (n - 1):
            raise ValueError(f"preset {self.name}: image_size must be a power of two >= 16, got {n}")


PRESETS: dict[str, Preset] = {
    # MNIST's 28x28 digits are zero-padded (background -1) to 32x32 by common/data/__init__.py.
    "mnist32": Preset("mnist32", image_size=32, channels=1),
    # The paper's network: CIFAR-10 and image folders.
    "dcgan64": Preset("dcgan64", image_size=64, channels=3),
}


@dataclass(frozen=True)
class BatchNormSpec:
    eps: float = 1e-5
    # Weight of the *new* batch statistic in the running average (new = 0.9 old + 0.1 batch).
    # PyTorch calls this momentum=0.1; Keras/MXNet momentum and Chainer decay are 1 - this.
    new_batch_weight: float = 0.1
    gamma_init_mean: float = 1.0
    gamma_init_std: float = 0.02

    @property
    def decay(self) -> float:
        """Weight of the old running value: Keras/MXNet `momentum`, Chainer `decay`."""
        return 1.0 - self.new_batch_weight


@dataclass(frozen=True)
class AdamSpec:
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    eps: float = 1e-8  # Keras defaults to 1e-7: backends set this explicitly.
    weight_decay: float = 0.0


@dataclass(frozen=True)
class LossSpec:
    real_label: float = 1.0
    fake_label: float = 0.0
    # One-sided label smoothing sets real_label to e.g. 0.9; off by default.


@dataclass(frozen=True)
class LayerSpec:
    """One conv/deconv of G or D with what follows it (BN and/or activation)."""
    net: Net
    index: int
    kind: Literal["deconv", "conv"]
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    pad: int
    in_size: int
    out_size: int
    batchnorm: bool
    activation: Literal["relu", "leaky_relu", "tanh", "none"]

    @property
    def local_name(self) -> str:
        """The conv/deconv's name inside its net ('deconv0'); its BN's is `bn_local_name`, by the
        layer's index ('bn1' follows D.conv1), its activation's `activation_local_name` ('relu0'):
        every backend names its layers so. `name` and `bn_name` add the net ('G.deconv0')."""
        return f"{self.kind}{self.index}"

    bn_local_name = property(lambda self: f"bn{self.index}" if self.batchnorm else None)
    activation_local_name = property(lambda self: f"{self.activation}{self.index}")
    name = property(lambda self: f"{self.net}.{self.local_name}")
    bn_name = property(lambda self: f"{self.net}.{self.bn_local_name}" if self.batchnorm else None)

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        """Canonical (PyTorch) layout: conv (out, in, kh, kw), deconv (in, out, kh, kw)."""
        k = self.kernel
        if self.kind == "conv":
            return (self.out_channels, self.in_channels, k, k)
        return (self.in_channels, self.out_channels, k, k)

    @property
    def in_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, self.in_size, self.in_size)

    @property
    def out_shape(self) -> tuple[int, int, int]:
        return (self.out_channels, self.out_size, self.out_size)


def _out_size(kind: str, size: int, k: int, s: int, p: int) -> int:
    if kind == "conv":
        return (size + 2 * p - k) // s + 1
    return (size - 1) * s - 2 * p + k


@dataclass(frozen=True)
class ModelSpec:
    preset: Preset
    bn: BatchNormSpec = field(default_factory=BatchNormSpec)
    adam: AdamSpec = field(default_factory=AdamSpec)
    loss: LossSpec = field(default_factory=LossSpec)
    init_std: float = 0.02          # conv/deconv weights ~ N(0, init_std)
    leaky_slope: float = 0.2        # MXNet defaults to 0.25, Keras to 0.3
    kernel: int = 4

    @property
    def n_layers(self) -> int:
        """Convolutions per network: G grows 1 -> 4, then doubles to image_size (D mirrors it)."""
        return int(math.log2(self.preset.image_size)) - 1

    @property
    def generator(self) -> tuple[LayerSpec, ...]:
        p, n, k = self.preset, self.n_layers, self.kernel
        # Widths double per layer away from the image: the layer next to the image has ngf.
        widths = [p.nz] + [p.ngf * 2 ** (n - 2 - i) for i in range(n - 1)] + [p.channels]
        layers, size = [], 1
        for i in range(n):
            first, last = i == 0, i == n - 1
            stride, pad = (1, 0) if first else (2, 1)
            out = _out_size("deconv", size, k, stride, pad)
            layers.append(LayerSpec("G", i, "deconv", widths[i], widths[i + 1], k, stride, pad,
                                    size, out, batchnorm=not last,
                                    activation="tanh" if last else "relu"))
            size = out
        return tuple(layers)

    @property
    def discriminator(self) -> tuple[LayerSpec, ...]:
        p, n, k = self.preset, self.n_layers, self.kernel
        widths = [p.channels] + [p.ndf * 2 ** i for i in range(n - 1)] + [1]
        layers, size = [], p.image_size
        for i in range(n):
            first, last = i == 0, i == n - 1
            stride, pad = (1, 0) if last else (2, 1)
            out = _out_size("conv", size, k, stride, pad)
            layers.append(LayerSpec("D", i, "conv", widths[i], widths[i + 1], k, stride, pad,
                                    size, out, batchnorm=not (first or last),
                                    activation="none" if last else "leaky_relu"))
            size = out
        return tuple(layers)

    @property
    def layers(self) -> tuple[LayerSpec, ...]:
        return self.generator + self.discriminator

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every canonical tensor (trainable or not) in a stable order: the weight-file keys."""
        shapes: dict[str, tuple[int, ...]] = {}
        for layer in self.layers:
            shapes[f"{layer.name}.weight"] = layer.weight_shape
            if layer.batchnorm:
                c = (layer.out_channels,)
                for stat in BN_TENSORS:
                    shapes[f"{layer.bn_name}.{stat}"] = c
        return shapes

    def trainable_keys(self, net: Net | None = None) -> list[str]:
        """Canonical keys of the trainable tensors (weights, BN gamma/beta; not the running
        statistics), of one net or both, in parameter_shapes' order: what has a gradient."""
        return [key for key in self.parameter_shapes()
                if (net is None or key.startswith(net + ".")) and key.rsplit(".", 1)[1] not in BN_RUNNING]

    def parameter_count(self, net: Net | None = None, trainable_only: bool = True) -> int:
        total = 0
        for key, shape in self.parameter_shapes().items():
            if net and not key.startswith(net + "."):
                continue
            if trainable_only and key.rsplit(".", 1)[1] in BN_RUNNING:
                continue
            total += math.prod(shape)
        return total


BN_TRAINABLE = ("gamma", "beta")
BN_RUNNING = ("running_mean", "running_var")
BN_TENSORS = BN_TRAINABLE + BN_RUNNING


def model_spec(preset: str | Preset) -> ModelSpec:
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
        preset = PRESETS[preset]
    return ModelSpec(preset)


# Which preset a dataset uses unless --preset says otherwise (synthetic takes --preset's default).
DATASET_PRESETS = {"mnist": "mnist32", "mnist-5k": "mnist32", "synthetic": "mnist32", "cifar10": "dcgan64"}
# An image folder (--dataset PATH) is RGB: the paper's network, unless --preset says mnist32.
FOLDER_PRESET = "dcgan64"
