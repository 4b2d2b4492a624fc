"""Bare TensorFlow/Keras loop: one tf.function with GradientTapes and Keras's Adam, no fit().

Data is NHWC (Keras's layout) on the device before timing. The optimizer is the backend's: Keras's
Adam with the backend's SpecStepSize, which corrects Keras's float32 step size to the spec's Adam
(backends/tensorflow/training.py); the same update, so only the loop around it differs."""
from __future__ import annotations

from benchmarks.bare import loop
from common.spec import model_spec


def run(preset: str, batch: int, iters: int, threads: int, device: str = "cpu",
        init_weights: dict | None = None) -> dict:
    from backends import compat
    compat.prepare_tensorflow()
    import tensorflow as tf

    from backends.tensorflow import models, runtime, training, weights

    loop.check_sizes(batch, iters)
    spec = model_spec(preset)
    runtime.set_threads(threads or None)  # both TF pools; 0 leaves TF's default
    dev = runtime.select_device(device)  # the backend's device settings (full float32 on a GPU)
    place = tf.device(dev)

    with place:
        G, D = models.build(spec)
        weights.from_canonical({"G": G, "D": D}, loop.starting_weights(spec, init_weights))
        opt_G, opt_D = training.adam(G, spec.adam), training.adam(D, spec.adam)
        real_nchw, z = loop.fixed_batch(spec, batch)
        real, z = models.to_channels_last(tf.constant(real_nchw)), tf.constant(z)
    bce, labels = training.bce_with_logits, spec.loss

    @tf.function
    def step(real, z):
        with tf.GradientTape() as g_tape:
            fake = G(z, training=True)
            with g_tape.stop_recording():  # D's step is not part of G's gradient
                with tf.GradientTape() as d_tape:
                    loss_d = (bce(D(real, training=True), labels.real_label)
                              + bce(D(tf.stop_gradient(fake), training=True), labels.fake_label))
                opt_D.apply(d_tape.gradient(loss_d, D.trainable_variables), D.trainable_variables)
            loss_g = bce(D(fake, training=True), labels.real_label)  # the updated D
        opt_G.apply(g_tape.gradient(loss_g, G.trainable_variables), G.trainable_variables)
        return loss_d, loss_g

    def run_step():
        with place:
            return step(real, z)

    result = loop.timed_steps(run_step, loop.synced_floats(runtime, dev), iters)
    return loop.report(result, runtime, dev)


if __name__ == "__main__":
    import benchmarks
    raise SystemExit(benchmarks.internal_entry("benchmarks.bare.tensorflow", "TensorFlow's bare reference loop", "benchmarks.bare -h"))
