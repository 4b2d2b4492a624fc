"""SPEC.md's iteration in Keras and Keras's own loop around it: the GAN model whose train_step is
the iteration (Keras puts the step on the model), its Adam, the tf.data pipeline that carries
the harness's batches, and the callback that reports each step to the harness."""
from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf

from backends.tensorflow.models import Discriminator, Generator, to_channels_last
from common.spec import AdamSpec, ModelSpec
from common.timing import FetchTimer


class SpecStepSize(keras.optimizers.schedules.LearningRateSchedule):
    """The spec's lr, scaled so that Keras's float32 Adam step size is the float64 one.

    Keras's Adam forms alpha = lr·sqrt(1-b2^t)/(1-b1^t) from float32 betas and powers, where
    1 - b2^t cancels: float32(0.999) is 1.3e-8 off, so alpha comes out 6.4e-6 (relative) small at
    t=1, and a float32 power's rounding moves it by up to ~1e-5 at later small t. This returns
    lr times (float64 alpha)/(Keras's float32 alpha), computed with the same float32 ops, so the
    update is the spec's Adam in the folded convention to float32 rounding (the MXNet backend
    corrects its own float32 hyperparameters alike)."""

    def __init__(self, adam):
        self.adam = adam

    def __call__(self, step):
        a = self.adam

        def bias_correction(dtype):
            t = tf.cast(step + 1, dtype)  # Keras's local_step
            return (tf.sqrt(1 - tf.pow(tf.constant(a.beta2, dtype), t))
                    / (1 - tf.pow(tf.constant(a.beta1, dtype), t)))

        ratio = bias_correction(tf.float64) / tf.cast(bias_correction(tf.float32), tf.float64)
        return tf.cast(a.lr * ratio, tf.float32)

    def get_config(self):
        return {"adam": self.adam}


def adam(net: keras.Model, spec: AdamSpec) -> keras.optimizers.Adam:
    """Keras's Adam with the spec's hyperparameters and SpecStepSize, built on net's trainable
    variables (its moments exist before fit, and a checkpoint can be read into them)."""
    if spec.weight_decay:
        raise NotImplementedError("Keras's Adam weight_decay is decoupled (AdamW); the spec's "
                                  "is PyTorch's L2 term")
    opt = keras.optimizers.Adam(learning_rate=SpecStepSize(spec), beta_1=spec.beta1,
                                beta_2=spec.beta2, epsilon=spec.eps, amsgrad=False)
    opt.build(net.trainable_variables)
    return opt


def bce_with_logits(logits, target: float):
    """Batch-mean BCEWithLogits against a constant label, in float32 (also under bf16)."""
    logits = tf.cast(logits, tf.float32)
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
        labels=tf.fill(tf.shape(logits), target), logits=logits))


class GAN(keras.Model):
    """G and D with one Adam each; `train_step` is one iteration of SPEC.md (spec_iteration)."""

    # Data parallel (backends/tensorflow/parallel.py): the optimizer sums gradients over the
    # replicas, so each replica differentiates its batch-mean loss divided by their number.
    replicas = 1

    def __init__(self, spec: ModelSpec, generator: Generator, discriminator: Discriminator):
        super().__init__(name="GAN")
        self.labels = spec.loss
        self.generator, self.discriminator = generator, discriminator

    def compile(self, g_optimizer, d_optimizer, jit_compile: bool):
        # No Keras loss or optimizer of its own (optimizer=None, not the 'rmsprop' default): the
        # step below owns both (built on their nets by adam()). jit_compile is set either way:
        # Keras's 'auto' turns XLA on whenever TF sees a GPU, and the spec runs without it.
        super().compile(optimizer=None, jit_compile=jit_compile)
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer

    def d_loss(self, real, fake):
        """Real and fake in separate D passes: two sets of batch statistics, as in the spec."""
        D = self.discriminator
        return (bce_with_logits(D(real, training=True), self.labels.real_label)
                + bce_with_logits(D(tf.stop_gradient(fake), training=True), self.labels.fake_label))

    def g_loss(self, fake):
        return bce_with_logits(self.discriminator(fake, training=True), self.labels.real_label)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Nothing to build: G, D and both optimizers are built before fit. Under a distribution
        strategy Keras's TF trainer would otherwise take a batch from fit's iterator to build
        the model symbolically, and the harness's stream would lose that batch."""

    def train_step(self, data):
        loss_d, loss_g = spec_iteration(self, *data)
        return {"loss_d": loss_d, "loss_g": loss_g}


def spec_iteration(gan: GAN, real, z):
    """real NCHW, z (N, nz) -> (loss_d, loss_g). G runs once; its output serves both steps.

    The tape around G stays open across the D step (paused, so D's update is not recorded
    in it) and records D's pass on the same fake with D's updated weights: G's gradient
    flows through the updated D without recomputing G(z). BN running statistics update in
    program order: G once, then D on real, on fake, on fake again."""
    G, D = gan.generator, gan.discriminator
    real = to_channels_last(real)
    with tf.GradientTape() as g_tape:
        fake = G(z, training=True)
        with g_tape.stop_recording():
            with tf.GradientTape() as d_tape:
                loss_d = gan.d_loss(real, fake)
                scaled_d = loss_d / gan.replicas if gan.replicas > 1 else loss_d
            d_grads = d_tape.gradient(scaled_d, D.trainable_variables)
            gan.d_optimizer.apply(d_grads, D.trainable_variables)
        loss_g = gan.g_loss(fake)
        scaled_g = loss_g / gan.replicas if gan.replicas > 1 else loss_g
    g_grads = g_tape.gradient(scaled_g, G.trainable_variables)
    gan.g_optimizer.apply(g_grads, G.trainable_variables)
    return loss_d, loss_g


def losses_to_numpy(pending: list[tf.Tensor]) -> np.ndarray:
    """The (loss_d, loss_g) of pending steps as a (k, 2) array: the sync."""
    return np.stack([p.numpy() for p in pending]).astype(np.float64)


def dataset(batches, preset, gpu: str | None = None) -> tf.data.Dataset:
    """The harness's (real, z) batches as a tf.data pipeline, in order and unchanged; on a GPU
    (`gpu`, its device name) the next batch is made and copied to it while a step runs."""
    signature = (tf.TensorSpec((None, preset.channels, preset.image_size, preset.image_size), tf.float32),
                 tf.TensorSpec((None, preset.nz), tf.float32))
    pipeline = tf.data.Dataset.from_generator(lambda: batches, output_signature=signature)
    options = tf.data.Options()
    options.deterministic = True
    # No background fetch: the harness's time must stay measurable (FetchTimer) and apart
    # from the step's, and no thread may compete with the step for the CPU.
    options.experimental_optimization.inject_prefetch = False
    pipeline = pipeline.with_options(options)
    if gpu:
        # A GPU step does not use the CPU: the harness's next batch and its copy overlap it,
        # one batch ahead, order unchanged, so the step does not wait for a synchronous copy
        # from pageable memory. copy_to_device then prefetch, not prefetch_to_device: over
        # from_generator the latter was reported to prefetch nothing (tensorflow#43905), and
        # this pair is what it is documented to be. fit makes the iterator in the device's scope.
        pipeline = pipeline.apply(tf.data.experimental.copy_to_device(gpu)).prefetch(1)
    return pipeline


class StepReporter(keras.callbacks.Callback):
    """on_step after every step of fit. On the CPU its seconds exclude the harness's batch
    fetch, which runs inside the step (from_generator, not prefetched) and is measured by the
    FetchTimer; on a GPU (`overlapped`) the fetch runs beside the step (dataset's prefetch), so
    subtracting it would credit the step with time it did not save: the wall time stays whole."""

    def __init__(self, fetch: FetchTimer, start: int, on_step, overlapped: bool = False):
        super().__init__()
        self.fetch, self.iteration, self.on_step, self.overlapped = fetch, start, on_step, overlapped

    def on_train_batch_begin(self, batch, logs=None):
        self.t0 = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        # Keras has already turned logs into floats: the step is done on the device.
        fetched = self.fetch.pop()
        seconds = time.perf_counter() - self.t0 - (0.0 if self.overlapped else fetched)
        self.on_step(self.iteration, logs["loss_d"], logs["loss_g"], seconds)
        self.iteration += 1
