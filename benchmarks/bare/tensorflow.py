"""Bare TensorFlow/Keras loop: one tf.function with GradientTapes and Keras's Adam, no fit().

Data is NHWC (Keras's layout) on the device before timing. The optimizer is the backend's: Keras's
Adam with the backend's SpecStepSize, which corrects Keras's float32 step size to the spec's Adam
(backends/tensorflow/backend.py); the same update, so only the loop around it differs."""
from __future__ import annotations

from benchmarks.bare import loop
from common import sysinfo
from common.spec import model_spec


def run(preset: str, batch: int, iters: int, threads: int, device: str = "cpu",
        init_weights: dict | None = None) -> dict:
    from backends import compat
    compat.prepare_tensorflow()
    import keras
    import tensorflow as tf

    from backends.tensorflow import backend, models, weights

    loop.check_sizes(batch, iters)
    spec = model_spec(preset)
    backend._set_threads(threads or None)  # both TF pools; 0 leaves TF's default
    on_gpu = device == "gpu"
    if on_gpu:  # untested here (no GPU): full float32, as the backend
        if not tf.config.list_physical_devices("GPU"):
            raise RuntimeError(f"--device gpu: TensorFlow {tf.__version__} sees no GPU")
        tf.config.experimental.enable_tensor_float_32_execution(False)
    place = tf.device("/GPU:0" if on_gpu else "/CPU:0")

    with place:
        G, D = models.Generator(spec), models.Discriminator(spec)
        p = spec.preset
        G(tf.zeros((1, p.nz)))  # builds the variables
        D(tf.zeros((1, p.image_size, p.image_size, p.channels)))
        weights.from_canonical({"G": G, "D": D}, loop.starting_weights(spec, init_weights))
        a = spec.adam
        opt_G, opt_D = (keras.optimizers.Adam(learning_rate=backend.SpecStepSize(a), beta_1=a.beta1,
                                              beta_2=a.beta2, epsilon=a.eps) for _ in "GD")
        opt_G.build(G.trainable_variables)
        opt_D.build(D.trainable_variables)
        real_nchw, z = loop.fixed_batch(spec, batch)
        real, z = models.to_channels_last(tf.constant(real_nchw)), tf.constant(z)
    bce, labels = models.bce_with_logits, spec.loss

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

    def finish(losses):
        if on_gpu:
            tf.test.experimental.sync_devices()
        return [float(loss) for loss in losses]

    result = loop.timed_steps(run_step, finish, iters)
    peak = ({"bytes": int(tf.config.experimental.get_memory_info("GPU:0")["peak"]),
             "kind": "device-allocator"} if on_gpu else
            {"bytes": sysinfo.peak_rss_bytes(), "kind": "rss"})
    pools = tf.config.threading
    return dict(result, peak_memory=peak,
                framework_version=f"{tf.__version__} (keras {keras.__version__})",
                # 0 means TF's default: as many as the machine has cores.
                threads={"intra_op": pools.get_intra_op_parallelism_threads(),
                         "inter_op": pools.get_inter_op_parallelism_threads()})
