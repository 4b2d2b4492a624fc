"""G and D as keras.Model subclasses built from the spec's layer table, channels_last inside
(the GAN model that trains them is in training.py).

Layer names follow the canonical ones (deconv0, bn0, ...), so weights.py maps keys by name. Every
Keras default that differs from the spec is set here from common.spec: BN momentum and epsilon,
LeakyReLU slope, no bias, the initialisers; data_format too (keras.json could change it).
"""
from __future__ import annotations

import contextlib

import keras
import numpy as np
import tensorflow as tf

from backends.base import layer_walk
from common.spec import LayerSpec, ModelSpec

DATA_FORMAT = "channels_last"


def to_channels_last(x):
    """NCHW (the protocol's boundary) -> NHWC (Keras's layout): a transpose, never a swapaxes."""
    return tf.transpose(x, (0, 2, 3, 1))


def to_channels_first(x):
    return tf.transpose(x, (0, 3, 1, 2))


def keras_padding(layer: LayerSpec) -> str:
    """The Keras padding mode equal to the spec's explicit, symmetric padding, or an error.

    TF's 'same' pads a conv by (out-1)*s + k - in in total, the smaller half first, with
    out = ceil(in/s); a transposed conv is that conv's gradient (its input and output swapped).
    With k4 s2 p1 the total is 2, one each side: 'same' is exactly p1 (the shape and parity
    tests confirm it on the layers themselves)."""
    if layer.pad == 0:
        return "valid"
    big, small = ((layer.in_size, layer.out_size) if layer.kind == "conv"
                  else (layer.out_size, layer.in_size))
    total = (small - 1) * layer.stride + layer.kernel - big
    if small == -(-big // layer.stride) and total == 2 * layer.pad:
        return "same"
    raise NotImplementedError(f"{layer.name}: padding {layer.pad} is neither Keras 'valid' nor 'same'")


def _conv(layer: LayerSpec, spec: ModelSpec, seed, dtype) -> keras.layers.Layer:
    conv = keras.layers.Conv2DTranspose if layer.kind == "deconv" else keras.layers.Conv2D
    return conv(layer.out_channels, layer.kernel, strides=layer.stride,
                padding=keras_padding(layer), data_format=DATA_FORMAT, use_bias=False,
                kernel_initializer=keras.initializers.RandomNormal(0.0, spec.init_std, seed=seed),
                name=layer.local_name, dtype=dtype)


def _batchnorm(layer: LayerSpec, spec: ModelSpec, seed, dtype) -> keras.layers.Layer:
    bn = spec.bn
    return keras.layers.BatchNormalization(
        axis=-1, momentum=bn.decay, epsilon=bn.eps, center=True, scale=True,
        gamma_initializer=keras.initializers.RandomNormal(bn.gamma_init_mean, bn.gamma_init_std,
                                                          seed=seed),
        beta_initializer="zeros", moving_mean_initializer="zeros",
        moving_variance_initializer="ones", name=layer.bn_local_name, dtype=dtype)


def _activation(layer: LayerSpec, spec: ModelSpec, dtype) -> keras.layers.Layer | None:
    name = layer.activation_local_name
    return {"relu": lambda: keras.layers.ReLU(name=name, dtype=dtype),
            "leaky_relu": lambda: keras.layers.LeakyReLU(negative_slope=spec.leaky_slope,
                                                         name=name, dtype=dtype),
            "tanh": lambda: keras.layers.Activation("tanh", name=name, dtype=dtype),
            "none": lambda: None}[layer.activation]()


class _Stack(keras.Model):
    """One net: conv/deconv, BN and activation layers applied in the spec's order."""

    def __init__(self, table: tuple[LayerSpec, ...], spec: ModelSpec, seed, dtype, **kwargs):
        super().__init__(**kwargs)
        self.stack = []
        for layer in table:
            self.stack.append(_conv(layer, spec, seed, dtype))
            if layer.batchnorm:
                self.stack.append(_batchnorm(layer, spec, seed, dtype))
            act = _activation(layer, spec, dtype)
            if act is not None:
                self.stack.append(act)

    def layer_outputs(self, x, training=False):
        """(layer, its output) for every layer in order: call() is this, keeping the last."""
        for layer in self.stack:
            x = layer(x, training=training)
            yield layer, x

    def call(self, x, training=False):
        for _, x in self.layer_outputs(x, training):
            pass
        return x


class Generator(_Stack):
    """z (N, nz) -> images NHWC."""

    def __init__(self, spec: ModelSpec, seed=None, dtype=None):
        super().__init__(spec.generator, spec, seed, dtype, name="G")
        self.nz = spec.preset.nz

    def layer_outputs(self, z, training=False):
        return super().layer_outputs(tf.reshape(z, (-1, 1, 1, self.nz)), training)


class Discriminator(_Stack):
    """Images NHWC -> one logit per image (N,); the sigmoid lives in the loss."""

    def __init__(self, spec: ModelSpec, seed=None, dtype=None):
        super().__init__(spec.discriminator, spec, seed, dtype, name="D")

    def call(self, x, training=False):
        return tf.reshape(super().call(x, training), (-1,))


def build(spec: ModelSpec, seed=None, dtype=None) -> tuple[Generator, Discriminator]:
    """G and D with their variables built (seed: a keras.random.SeedGenerator for the spec's
    initialisation; dtype: a Keras dtype policy name, float32 by default). Call it in the device
    scope the models are to live in."""
    G, D = Generator(spec, seed, dtype), Discriminator(spec, seed, dtype)
    p = spec.preset
    G(np.zeros((2, p.nz), np.float32))  # builds the variables
    D(np.zeros((2, p.image_size, p.image_size, p.channels), np.float32))
    return G, D


def layers(nets: dict, spec: ModelSpec):
    """(spec name, Keras layer) for every conv/deconv and BN: the Keras layers carry the spec's
    local names ('G.bn0' is G's layer 'bn0')."""
    return layer_walk(nets, spec, lambda net, name: net.get_layer(name))


@contextlib.contextmanager
def frozen_running_statistics(*nets):
    """BN running statistics restored after train-mode passes (Keras updates them in call)."""
    stats = [v for net in nets for layer in net.stack
             if isinstance(layer, keras.layers.BatchNormalization)
             for v in (layer.moving_mean, layer.moving_variance)]
    saved = [v.numpy() for v in stats]
    try:
        yield
    finally:
        for v, value in zip(stats, saved):
            v.assign(value)
