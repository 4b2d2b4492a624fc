"""TensorFlow/Keras backend (Keras 3 on TensorFlow).

Differences from the protocol worth knowing:
- The iteration (training.spec_iteration) is `GAN.train_step` (Keras puts the step on the
  model), and train() is Keras's own loop: `GAN.fit` over a tf.data pipeline that carries the harness's
  batches unchanged (Dataset.from_generator: order and values as given; on the CPU no prefetch,
  so the harness's fetch runs inside the step, serially, and FetchTimer takes its time out; on
  one GPU the next batch is prefetched to the device while a step runs). fit keeps
  the order (a dataset is never shuffled) and calls a callback after every step, so no loop of
  our own is needed. train_step() runs the same spec_iteration under its own tf.function.
- The first step's seconds include tracing and instantiating the step's graph (fit traces on
  its first batch; about a second on a CPU), which common.timing counts as warm-up.
- Losses are fetched every step: Keras turns the logs into floats before the batch-end
  callback, which on a GPU is one sync per step. TF32 is off on GPUs (runtime.py).
- channels_last inside (Keras's layout); NCHW is transposed at the boundary, so
  options.channels_last changes nothing here.
- XLA is off unless options.xla (jit_compile for the step; Keras would switch it on by itself
  on a GPU). options.bf16 is Keras mixed precision ('mixed_bfloat16' layers: bfloat16
  compute, float32 variables, BN statistics and losses).
- Adam folds the bias correction into the step size ("folded"), which Keras forms in float32:
  SpecStepSize corrects its rounding. BN's moving variance takes the biased batch variance
  (running_var_unbiased False).
- options.threads sets both TF thread pools before TF's runtime starts (runtime.set_threads).
- Data parallel (devices > 1): MirroredStrategy, see parallel.py; the models are built, and fit
  runs, in the strategy's scope instead of one device's. Across hosts (nodes > 1):
  MultiWorkerMirroredStrategy, under which Keras 3's fit does not run, so train() is the plain
  loop of the other backends (fetching_loop) around the same iteration under strategy.run.
"""
from __future__ import annotations

import functools
import warnings

import keras
import numpy as np
import tensorflow as tf

from backends.base import BackendBase, BackendOptions, BackendUnavailable
from backends.tensorflow import models, parallel, runtime, training, weights
from common.spec import ModelSpec
from common.timing import FetchTimer

MIXED_POLICY = "mixed_bfloat16"


def _gpu_model(gpu) -> str:
    return tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)


class Backend(BackendBase):
    name = "tensorflow"
    adam_convention = "folded"
    running_var_unbiased = False
    data_parallel = True

    runtime, weights = runtime, weights

    @classmethod
    def gpu_devices(cls) -> list[str]:
        return [f"gpu:{i} ({_gpu_model(gpu)})"
                for i, gpu in enumerate(tf.config.list_physical_devices("GPU"))]

    def __init__(self, spec: ModelSpec, options: BackendOptions = BackendOptions()):
        super().__init__(spec, options)
        if keras.backend.backend() != "tensorflow":
            raise BackendUnavailable(f"Keras runs on {keras.backend.backend()!r} in this process, "
                                     "not TensorFlow (KERAS_BACKEND was set before this backend)")
        runtime.quiet(options.verbose)
        runtime.set_threads(options.threads)
        self.device = runtime.select_device(options.device)
        self.replicas = (parallel.Replicas(options, self.device)
                         if options.devices > 1 or options.nodes > 1 else None)
        self.xla = options.xla
        dtype = MIXED_POLICY if options.bf16 else "float32"
        with self.on_device():
            seed = keras.random.SeedGenerator(options.seed)  # the spec's init, seeded (no shared init)
            self.G, self.D = models.build(spec, seed, dtype)
            self.gan = training.GAN(spec, self.G, self.D)
            self.gan.replicas = self.replicas.strategy.num_replicas_in_sync if self.replicas else 1
            self.gan.compile(training.adam(self.G, spec.adam), training.adam(self.D, spec.adam),
                             jit_compile=self.xla)
            iteration = functools.partial(training.spec_iteration, self.gan)
            self._step = (self.replicas.step(iteration, self.xla) if options.nodes > 1 else
                          tf.function(iteration, jit_compile=self.xla, reduce_retracing=True))

    def on_device(self):
        """The scope the models live and run in: the strategy's when data parallel."""
        return self.replicas.scope() if self.replicas else tf.device(self.device)

    # ----- device -----
    def gpu_name(self) -> str:
        return _gpu_model(tf.config.list_physical_devices("GPU")[0])

    def device_details(self) -> dict:
        return {"framework_version": tf.__version__, "keras_version": keras.__version__, "xla": self.xla}

    # ----- checkpoints -----
    CHECKPOINT = "tensorflow"  # tf.train.Checkpoint's prefix: .index and .data-* files

    def _checkpoint(self) -> tf.train.Checkpoint:
        # Both Adams (iterations, first and second moments) and both nets' variables, listed:
        # a Keras 3 model passed itself is not tracked (its BN moving statistics, which no
        # optimizer holds, were missing from the file, measured).
        return tf.train.Checkpoint(G_variables=list(self.G.variables),
                                   D_variables=list(self.D.variables),
                                   g_optimizer=self.gan.g_optimizer, d_optimizer=self.gan.d_optimizer)

    def save_checkpoint(self, folder) -> None:
        self._checkpoint().write(str(folder / self.CHECKPOINT))

    def load_checkpoint(self, folder) -> None:
        # Every variable exists already (built in __init__): a name that matches nothing fails.
        self._checkpoint().read(str(folder / self.CHECKPOINT)).assert_consumed()

    # ----- introspection -----
    def layer_output_shapes(self, z: np.ndarray, x: np.ndarray) -> dict[str, tuple[int, int, int]]:
        observed = {id(layer): name for name, layer in models.layers(self.nets(), self.spec)}
        shapes = {}
        with self.on_device():
            for net, inputs in ((self.G, z), (self.D, models.to_channels_last(x))):
                for layer, out in net.layer_outputs(inputs):
                    if id(layer) in observed:
                        h, w, c = out.shape[1:]
                        shapes[observed[id(layer)]] = (c, h, w)
        return shapes

    def trainable_parameter_counts(self) -> dict[str, int]:
        return {name: sum(int(np.prod(v.shape)) for v in layer.trainable_variables)
                for name, layer in models.layers(self.nets(), self.spec)}

    def apply_gradients(self, net: str, grads: dict[str, np.ndarray]) -> None:
        opt = self.gan.g_optimizer if net == "G" else self.gan.d_optimizer
        variables = [weights.variable(self.nets(), key) for key in grads]
        with self.on_device():
            opt.apply([weights.to_framework_layout(g) for g in grads.values()], variables)

    # ----- compute -----
    def forward(self, net: str, x: np.ndarray, train: bool) -> np.ndarray:
        module = self.nets()[net]
        with self.on_device(), models.frozen_running_statistics(*([module] if train else [])):
            if net == "G":
                out = models.to_channels_first(module(x, training=train))
            else:
                out = module(models.to_channels_last(x), training=train)
        return out.numpy().astype(np.float32)

    def gradients(self, real: np.ndarray, z: np.ndarray) -> dict:
        d_keys, g_keys = self.spec.trainable_keys("D"), self.spec.trainable_keys("G")
        nets = self.nets()
        with self.on_device(), models.frozen_running_statistics(self.G, self.D):
            with tf.GradientTape(persistent=True) as tape:
                fake = self.G(z, training=True)
                loss_d = self.gan.d_loss(models.to_channels_last(real), fake)
                loss_g = self.gan.g_loss(fake)  # the same, not updated, D
            grads = {net: {weights.framework_key(k)[1]: g.numpy() for k, g in
                           zip(keys, tape.gradient(loss, [weights.variable(nets, k) for k in keys]))}
                     for net, keys, loss in (("D", d_keys, loss_d), ("G", g_keys, loss_g))}
            del tape
        return {"loss_d": float(loss_d), "loss_g": float(loss_g), "grads": self.export_gradients(grads)}

    def train_step(self, real: np.ndarray, z: np.ndarray) -> tuple[float, float]:
        with self.on_device():
            # across hosts the step takes its rows of the numpy batch itself (parallel.step)
            batch = (real, z) if self.options.nodes > 1 else (tf.constant(real), tf.constant(z))
            loss_d, loss_g = self._step(*batch)
        return float(loss_d), float(loss_g)

    def train(self, batches, start, on_step) -> None:
        if self.options.nodes > 1:  # MultiWorkerMirroredStrategy: no fit (module docstring)
            with self.on_device(), self.replicas.training():
                try:
                    self.fetching_loop(batches, start, on_step, self._step, training.losses_to_numpy)
                except (tf.errors.UnavailableError, tf.errors.CancelledError, tf.errors.AbortedError) as exc:
                    raise RuntimeError(self.replicas.lost(exc)) from None
            return
        fetch = FetchTimer(batches)
        # On one GPU the batches are prefetched to it (training.dataset); under a strategy its
        # own input pipeline places the replicas' shards.
        gpu = self.device if self.on_gpu and not self.replicas else None
        reporter = training.StepReporter(fetch, start, on_step, overlapped=gpu is not None)
        optimizers = (self.gan.g_optimizer, self.gan.d_optimizer)
        counts = [int(opt.iterations.numpy()) for opt in optimizers]
        with self.on_device(), warnings.catch_warnings():
            # fit reads the harness's finite stream to its end and then says so: expected here.
            warnings.filterwarnings("ignore", message="Your input ran out of data")
            try:
                self.gan.fit(training.dataset(fetch, self.spec.preset, gpu), epochs=1, verbose=0, shuffle=False,
                             callbacks=[reporter])
            finally:
                # The step fit runs into the end of the data (OutOfRange) still increments each
                # Adam's step counter, which has no data dependency, though no update happens
                # (measured: +1 per fit call): put the counters back to the steps taken, or
                # the next train() call (a resumed segment) would use the wrong bias correction.
                for opt, count in zip(optimizers, counts):
                    opt.iterations.assign(count + reporter.iteration - start)
