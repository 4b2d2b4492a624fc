"""TensorFlow/Keras backend (Keras 3 on TensorFlow).

Differences from the protocol worth knowing:
- The iteration is `GAN.train_step` in models.py (Keras puts the step on the model), and
  train() is Keras's own loop: `GAN.fit` over a tf.data pipeline that carries the harness's
  batches unchanged (Dataset.from_generator: order and values as given; no prefetch, so the
  harness's fetch runs inside the step, serially, and FetchTimer takes its time out). fit keeps
  the order (a dataset is never shuffled) and calls a callback after every step, so no loop of
  our own is needed. train_step() runs the same `GAN.iteration` under its own tf.function.
- The first step's seconds include tracing and instantiating the step's graph (fit traces on
  its first batch; ~0.4-1.8 s here), which common.harness.timing counts as warm-up.
- Losses are fetched every step: Keras turns the logs into floats before the batch-end
  callback, which on a GPU is one sync per step. TF32 is off on GPUs (full float32).
- channels_last inside (Keras's layout); NCHW is transposed at the boundary, so
  options.channels_last changes nothing here.
- XLA is off unless options.xla (jit_compile for the step; Keras would switch it on by itself
  on a GPU). options.bf16 is Keras mixed precision ('mixed_bfloat16' layers: bfloat16
  compute, float32 variables, BN statistics and losses).
- Adam folds the bias correction into the step size ("folded"), which Keras forms in float32:
  SpecStepSize corrects its rounding. BN's moving variance takes the biased batch variance
  (running_var_unbiased False).
- options.threads sets both TF thread pools (intra-op: threads per op; inter-op: ops at once);
  it must come before TF's runtime starts, which it does in the worker's fresh process.
- Data parallel (devices > 1): MirroredStrategy, see parallel.py; the models are built, and fit
  runs, in the strategy's scope instead of one device's.
"""
from __future__ import annotations

import contextlib
import logging
import time
import warnings

import keras
import numpy as np
import tensorflow as tf

from backends.base import BackendBase, BackendOptions, BackendUnavailable
from backends.tensorflow import models, parallel, weights
from common import sysinfo
from common.spec import ModelSpec
from common.harness.timing import FetchTimer

MIXED_POLICY = "mixed_bfloat16"


def _set_threads(threads: int | None) -> None:
    if not threads:
        return
    pools = tf.config.threading
    try:
        pools.set_intra_op_parallelism_threads(threads)
        pools.set_inter_op_parallelism_threads(threads)
    except RuntimeError as exc:  # TF's runtime already started in this process
        now = (pools.get_intra_op_parallelism_threads(), pools.get_inter_op_parallelism_threads())
        if now != (threads, threads):
            raise BackendUnavailable(f"threads={threads}: TensorFlow already runs with "
                                     f"intra/inter-op threads {now} in this process") from exc


def _select_device(requested: str) -> str:
    gpus = tf.config.list_physical_devices("GPU")
    if requested == "cpu" or not gpus:
        if requested == "gpu":
            raise BackendUnavailable(
                f"--device gpu: TensorFlow {tf.__version__} sees no GPU "
                f"(built with CUDA: {tf.test.is_built_with_cuda()})")
        if gpus:
            with contextlib.suppress(RuntimeError):  # too late once TF's runtime started:
                tf.config.set_visible_devices([], "GPU")  # then the device scope pins the CPU
        return "/CPU:0"
    with contextlib.suppress(RuntimeError):
        # Allocate as needed rather than the whole GPU up front; the peak is measured either way.
        tf.config.experimental.set_memory_growth(gpus[0], True)
    # Full float32 for spec runs, as the other backends: TF uses TF32 on Ampere+ by default.
    tf.config.experimental.enable_tensor_float_32_execution(False)
    return "/GPU:0"


def _quiet() -> None:
    """TF's and absl's Python-level logging down to errors (TF_CPP_MIN_LOG_LEVEL, the C++ side,
    is set by run_all before TF starts)."""
    tf.get_logger().setLevel(logging.ERROR)
    with contextlib.suppress(ImportError):
        from absl import logging as absl_logging
        absl_logging.set_verbosity(absl_logging.ERROR)


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


@contextlib.contextmanager
def _running_statistics_kept(nets):
    """BN running statistics restored after a train-mode forward (Keras updates them in call)."""
    stats = [v for net in nets for layer in net.stack
             if isinstance(layer, keras.layers.BatchNormalization)
             for v in (layer.moving_mean, layer.moving_variance)]
    saved = [v.numpy() for v in stats]
    try:
        yield
    finally:
        for v, value in zip(stats, saved):
            v.assign(value)


class _StepReporter(keras.callbacks.Callback):
    """on_step after every step of fit; its seconds exclude the harness's batch fetch, which
    runs inside the step (from_generator, not prefetched) and is measured by the FetchTimer."""

    def __init__(self, fetch: FetchTimer, start: int, on_step):
        super().__init__()
        self.fetch, self.iteration, self.on_step = fetch, start, on_step

    def on_train_batch_begin(self, batch, logs=None):
        self.t0 = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        # Keras has already turned logs into floats: the step is done on the device.
        seconds = time.perf_counter() - self.t0 - self.fetch.pop()
        self.on_step(self.iteration, logs["loss_d"], logs["loss_g"], seconds)
        self.iteration += 1


class Backend(BackendBase):
    name = "tensorflow"
    adam_convention = "folded"
    running_var_unbiased = False
    data_parallel = True

    @classmethod
    def probe(cls) -> dict:
        gpus = [tf.config.experimental.get_device_details(g).get("device_name", g.name)
                for g in tf.config.list_physical_devices("GPU")]
        return {"version": f"{tf.__version__} (keras {keras.__version__})",
                "devices": ["cpu"] + [f"gpu:{i} ({name})" for i, name in enumerate(gpus)]}

    def __init__(self, spec: ModelSpec, options: BackendOptions = BackendOptions()):
        super().__init__(spec, options)
        if keras.backend.backend() != "tensorflow":
            raise BackendUnavailable(f"Keras runs on {keras.backend.backend()!r} in this process, "
                                     "not TensorFlow (KERAS_BACKEND was set before this backend)")
        if not options.verbose:
            _quiet()
        _set_threads(options.threads)
        self.device = _select_device(options.device)
        self.strategy = parallel.strategy(options, self.device) if options.devices > 1 else None
        self.xla = options.xla
        dtype = MIXED_POLICY if options.bf16 else "float32"
        with self._on_device():
            seed = keras.random.SeedGenerator(options.seed)  # the spec's init, seeded (no shared init)
            self.G = models.Generator(spec, seed, dtype)
            self.D = models.Discriminator(spec, seed, dtype)
            p = spec.preset
            self.G(np.zeros((2, p.nz), np.float32))  # builds the variables
            self.D(np.zeros((2, p.image_size, p.image_size, p.channels), np.float32))
            self.gan = models.GAN(spec, self.G, self.D)
            self.gan.replicas = options.devices
            self.gan.compile(self._adam(), self._adam(), jit_compile=self.xla)
            self._step = tf.function(self.gan.iteration, jit_compile=self.xla,
                                     reduce_retracing=True)

    def _adam(self) -> keras.optimizers.Adam:
        adam = self.spec.adam
        if adam.weight_decay:
            raise NotImplementedError("Keras's Adam weight_decay is decoupled (AdamW); the spec's "
                                      "is PyTorch's L2 term")
        return keras.optimizers.Adam(learning_rate=SpecStepSize(adam), beta_1=adam.beta1,
                                     beta_2=adam.beta2, epsilon=adam.eps, amsgrad=False)

    def _on_device(self):
        return self.strategy.scope() if self.strategy else tf.device(self.device)

    def parallel_info(self) -> dict:
        return parallel.info(self.strategy) if self.strategy else super().parallel_info()

    @property
    def _on_gpu(self) -> bool:
        return self.device.startswith("/GPU")

    # ----- device -----
    def device_info(self) -> dict:
        if self._on_gpu:
            gpu = tf.config.list_physical_devices("GPU")[0]
            name = tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
        else:
            name = sysinfo.cpu_model()
        pools = tf.config.threading
        return {"device": "gpu" if self._on_gpu else "cpu", "name": name,
                "framework_version": tf.__version__, "keras_version": keras.__version__,
                "xla": self.xla,
                # 0 means TF's default: as many as the machine has cores.
                "threads": {"intra_op": pools.get_intra_op_parallelism_threads(),
                            "inter_op": pools.get_inter_op_parallelism_threads()}}

    def synchronize(self) -> None:
        if self._on_gpu:
            tf.test.experimental.sync_devices()

    def peak_memory(self) -> dict:
        if self._on_gpu:
            return {"bytes": int(tf.config.experimental.get_memory_info("GPU:0")["peak"]),
                    "kind": "device-allocator"}
        return {"bytes": sysinfo.peak_rss_bytes(), "kind": "rss"}

    # ----- weights -----
    def _nets(self) -> dict:
        return {"G": self.G, "D": self.D}

    def load_weights(self, canonical: dict[str, np.ndarray]) -> None:
        weights.from_canonical(self._nets(), canonical)

    def export_weights(self) -> dict[str, np.ndarray]:
        return weights.to_canonical(self._nets(), self.spec.parameter_shapes())

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
    def _spec_layers(self):
        """(spec name, Keras layer) for every conv/deconv and BN: the Keras layers carry the spec's
        names without the net's prefix ('G.bn0' is G's layer 'bn0')."""
        for layer in self.spec.layers:
            for name in (layer.name, layer.bn_name):
                if name:
                    net, keras_name = name.split(".")
                    yield name, self._nets()[net].get_layer(keras_name)

    def layer_output_shapes(self, z: np.ndarray, x: np.ndarray) -> dict[str, tuple[int, int, int]]:
        observed = {id(layer): name for name, layer in self._spec_layers()}
        shapes = {}
        with self._on_device():
            for net, inputs in ((self.G, z), (self.D, models.to_channels_last(x))):
                for layer, out in net.layer_outputs(inputs):
                    if id(layer) in observed:
                        h, w, c = out.shape[1:]
                        shapes[observed[id(layer)]] = (c, h, w)
        return shapes

    def trainable_parameter_counts(self) -> dict[str, int]:
        return {name: sum(int(np.prod(v.shape)) for v in layer.trainable_variables)
                for name, layer in self._spec_layers()}

    def apply_gradients(self, net: str, grads: dict[str, np.ndarray]) -> None:
        opt = self.gan.g_optimizer if net == "G" else self.gan.d_optimizer
        variables = [weights.variable(self._nets(), key) for key in grads]
        with self._on_device():
            opt.apply([weights.to_keras_layout(g) for g in grads.values()], variables)

    # ----- compute -----
    def generate(self, z: np.ndarray, train: bool = False) -> np.ndarray:
        with self._on_device(), _running_statistics_kept([self.G] if train else []):
            images = models.to_channels_first(self.G(z, training=train))
        return images.numpy().astype(np.float32)

    def discriminate(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        with self._on_device(), _running_statistics_kept([self.D] if train else []):
            logits = self.D(models.to_channels_last(x), training=train)
        return logits.numpy().astype(np.float32)

    def gradients(self, real: np.ndarray, z: np.ndarray) -> dict:
        d_keys, g_keys = (weights.trainable_keys(self.spec, net) for net in ("D", "G"))
        nets = self._nets()
        with self._on_device(), _running_statistics_kept([self.G, self.D]):
            with tf.GradientTape(persistent=True) as tape:
                fake = self.G(z, training=True)
                loss_d = self.gan.d_loss(models.to_channels_last(real), fake)
                loss_g = self.gan.g_loss(fake)  # the same, not updated, D
            grads = dict(zip(d_keys, tape.gradient(loss_d, [weights.variable(nets, k) for k in d_keys])))
            grads.update(zip(g_keys, tape.gradient(loss_g, [weights.variable(nets, k) for k in g_keys])))
            del tape
        return {"loss_d": float(loss_d), "loss_g": float(loss_g),
                "grads": {k: weights.to_canonical_layout(g.numpy()) for k, g in grads.items()}}

    def train_step(self, real: np.ndarray, z: np.ndarray) -> tuple[float, float]:
        with self._on_device():
            loss_d, loss_g = self._step(tf.constant(real), tf.constant(z))
        return float(loss_d), float(loss_g)

    def _dataset(self, batches) -> tf.data.Dataset:
        """The harness's (real, z) batches as a tf.data pipeline, in order and unchanged."""
        p = self.spec.preset
        signature = (tf.TensorSpec((None, p.channels, p.image_size, p.image_size), tf.float32),
                     tf.TensorSpec((None, p.nz), tf.float32))
        dataset = tf.data.Dataset.from_generator(lambda: batches, output_signature=signature)
        options = tf.data.Options()
        options.deterministic = True
        # No background fetch: the harness's time must stay measurable (FetchTimer) and apart
        # from the step's, and no thread may compete with the step for the CPU.
        options.experimental_optimization.inject_prefetch = False
        return dataset.with_options(options)

    def train(self, batches, start, on_step) -> None:
        fetch = FetchTimer(batches)
        reporter = _StepReporter(fetch, start, on_step)
        optimizers = (self.gan.g_optimizer, self.gan.d_optimizer)
        counts = [int(opt.iterations.numpy()) for opt in optimizers]
        with self._on_device(), warnings.catch_warnings():
            # fit reads the harness's finite stream to its end and then says so: expected here.
            warnings.filterwarnings("ignore", message="Your input ran out of data")
            try:
                self.gan.fit(self._dataset(fetch), epochs=1, verbose=0, shuffle=False,
                             callbacks=[reporter])
            finally:
                # The step fit runs into the end of the data (OutOfRange) still increments each
                # Adam's step counter, which has no data dependency, though no update happens
                # (measured: +1 per fit call): put the counters back to the steps taken, or
                # the next train() call (a resumed segment) would use the wrong bias correction.
                for opt, count in zip(optimizers, counts):
                    opt.iterations.assign(count + reporter.iteration - start)
