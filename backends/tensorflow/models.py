"""G and D as keras.Model subclasses built from the spec's layer table, channels_last inside, and
the GAN model whose `train_step` is SPEC.md's iteration (Keras puts the step on the model).

Layer names follow the canonical ones (deconv0, bn0, ...), so weights.py maps keys by name. Every
Keras default that differs from the spec is set here from common.spec: BN momentum and epsilon,
LeakyReLU slope, no bias, the initialisers; data_format too (keras.json could change it).
"""
from __future__ import annotations

import keras
import tensorflow as tf

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
                name=f"{layer.kind}{layer.index}", dtype=dtype)


def _batchnorm(layer: LayerSpec, spec: ModelSpec, seed, dtype) -> keras.layers.Layer:
    bn = spec.bn
    return keras.layers.BatchNormalization(
        axis=-1, momentum=bn.decay, epsilon=bn.eps, center=True, scale=True,
        gamma_initializer=keras.initializers.RandomNormal(bn.gamma_init_mean, bn.gamma_init_std,
                                                          seed=seed),
        beta_initializer="zeros", moving_mean_initializer="zeros",
        moving_variance_initializer="ones", name=f"bn{layer.index}", dtype=dtype)


def _activation(layer: LayerSpec, spec: ModelSpec, dtype) -> keras.layers.Layer | None:
    name = f"{layer.activation}{layer.index}"
    return {"relu": lambda: keras.layers.ReLU(name=name, dtype=dtype),
            "leaky_relu": lambda: keras.layers.LeakyReLU(negative_slope=spec.leaky_slope,
                                                         name=name, dtype=dtype),
            "tanh": lambda: keras.layers.Activation("tanh", name=name, dtype=dtype),
            "none": lambda: None}[layer.activation]()


class _Stack(keras.Model):
    """One net: conv/deconv, BN and activation layers applied in the spec's order."""

    def __init__(self, layers: tuple[LayerSpec, ...], spec: ModelSpec, seed, dtype, **kwargs):
        super().__init__(**kwargs)
        self.stack = []
        for layer in layers:
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


def bce_with_logits(logits, label: float):
    """Batch-mean BCEWithLogits against a constant label, in float32 (also under bf16)."""
    logits = tf.cast(logits, tf.float32)
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
        labels=tf.fill(tf.shape(logits), label), logits=logits))


class GAN(keras.Model):
    """G and D with one Adam each; `train_step` is one iteration of SPEC.md."""

    # Data parallel (backends/tensorflow/parallel.py): the optimizer sums gradients over the
    # replicas, so each replica differentiates its batch-mean loss divided by their number.
    replicas = 1

    def __init__(self, spec: ModelSpec, generator: Generator, discriminator: Discriminator):
        super().__init__(name="GAN")
        self.labels = spec.loss
        self.generator, self.discriminator = generator, discriminator

    def compile(self, g_optimizer, d_optimizer, jit_compile: bool):
        # No Keras loss or optimizer of its own (optimizer=None, not the 'rmsprop' default): the
        # step below owns both. jit_compile is set either way: Keras's 'auto' turns XLA on
        # whenever TF sees a GPU, and the spec runs without it.
        super().compile(optimizer=None, jit_compile=jit_compile)
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    def d_loss(self, real, fake):
        """Real and fake in separate D passes: two sets of batch statistics, as in the spec."""
        D = self.discriminator
        return (bce_with_logits(D(real, training=True), self.labels.real_label)
                + bce_with_logits(D(tf.stop_gradient(fake), training=True), self.labels.fake_label))

    def g_loss(self, fake):
        return bce_with_logits(self.discriminator(fake, training=True), self.labels.real_label)

    def iteration(self, real, z):
        """real NCHW, z (N, nz) -> (loss_d, loss_g). G runs once; its output serves both steps.

        The tape around G stays open across the D step (paused, so D's update is not recorded
        in it) and records D's pass on the same fake with D's updated weights: G's gradient
        flows through the updated D without recomputing G(z). BN running statistics update in
        program order: G once, then D on real, on fake, on fake again."""
        G, D = self.generator, self.discriminator
        real = to_channels_last(real)
        with tf.GradientTape() as g_tape:
            fake = G(z, training=True)
            with g_tape.stop_recording():
                with tf.GradientTape() as d_tape:
                    loss_d = self.d_loss(real, fake)
                    scaled_d = loss_d / self.replicas if self.replicas > 1 else loss_d
                d_grads = d_tape.gradient(scaled_d, D.trainable_variables)
                self.d_optimizer.apply(d_grads, D.trainable_variables)
            loss_g = self.g_loss(fake)
            scaled_g = loss_g / self.replicas if self.replicas > 1 else loss_g
        g_grads = g_tape.gradient(scaled_g, G.trainable_variables)
        self.g_optimizer.apply(g_grads, G.trainable_variables)
        return loss_d, loss_g

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Nothing to build: G, D and both optimizers are built before fit. Under a distribution
        strategy Keras's TF trainer would otherwise take a batch from fit's iterator to build
        the model symbolically, and the harness's stream would lose that batch."""

    def train_step(self, data):
        loss_d, loss_g = self.iteration(*data)
        return {"loss_d": loss_d, "loss_g": loss_g}
