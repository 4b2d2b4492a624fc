"""Chainer backend.

Differences from the protocol's defaults worth knowing:
- train() is Chainer's Trainer loop (training.py); train_step() runs the same iteration
  function directly, without a Trainer.
- Adam folds the bias correction into the step size (adam_convention "folded"); BN adds the
  unbiased batch variance to its running variance (as PyTorch does).
- Train-mode forwards that must not touch the running statistics save and restore them:
  Chainer's BN link always updates them in train mode.
- On a GPU (CuPy), losses are fetched every `fetch_every_gpu` steps (one sync per fetch).
- Data parallel (devices > 1): ChainerMN under mpiexec, see parallel.py.
"""
from __future__ import annotations

import contextlib
import os

import numpy as np

from backends.base import BackendBase, BackendOptions, BackendUnavailable
from backends.chainer import models, parallel, training, weights
from backends.compat import prepare_chainer
from common import sysinfo
from common.spec import ModelSpec
from common.harness.timing import FetchTimer

chainer = prepare_chainer()
from chainer.backends import cuda  # noqa: E402


def _gpu_unavailable_reason() -> str | None:
    """Why chainer cannot use a GPU here (None if it can)."""
    if not cuda.available:
        error = getattr(cuda, "_resolution_error", None)
        return ("CuPy is not installed (pip install '.[gpu-chainer]')" if error is None
                or isinstance(error, ModuleNotFoundError)
                else f"CuPy cannot be used: {type(error).__name__}: {error}")
    try:
        count = cuda.cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - CUDA runtime errors: no driver, no device
        return f"CuPy {cuda.cupy.__version__} sees no CUDA device ({exc})"
    return None if count else f"CuPy {cuda.cupy.__version__} sees no CUDA device"


def _select_device(requested: str, local_rank: int = 0):
    if requested != "cpu":
        reason = _gpu_unavailable_reason()
        if reason is None:
            device = chainer.get_device(f"@cupy:{local_rank}")
            device.use()
            return device
        if requested == "gpu":
            raise BackendUnavailable(f"--device gpu: chainer cannot use a GPU: {reason}")
    return chainer.get_device("@numpy")


@contextlib.contextmanager
def _frozen_running_statistics(*nets):
    """Train-mode forwards inside leave every BN's running statistics as they were."""
    saved = [(bn, bn.avg_mean.copy(), bn.avg_var.copy()) for net in nets for bn in net.batchnorms()]
    try:
        yield
    finally:
        for bn, mean, var in saved:
            bn.avg_mean[...], bn.avg_var[...] = mean, var


def _blas_threads() -> dict:
    """numpy's BLAS thread pools as they are in effect (threadpoolctl, when installed), and the
    environment that sets them (run_all sets OMP_NUM_THREADS from --threads for the child)."""
    info = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
            if k in os.environ}
    try:
        import threadpoolctl
    except ImportError:
        return info
    for pool in threadpoolctl.threadpool_info():
        info[f"{pool['internal_api']}.num_threads"] = pool["num_threads"]
    return info


class Backend(BackendBase):
    name = "chainer"
    data_parallel = sync_bn_supported = True  # ChainerMN (parallel.py)
    adam_convention = "folded"
    running_var_unbiased = True
    fetch_every_gpu = 10
    log_every = 100
    # Trainer directory (LogReport's log file, snapshots) and snapshot interval: off by default;
    # the harness's checkpoints (save_checkpoint, between train() segments) do not use them.
    trainer_out: str | None = None
    snapshot_every: int | None = None

    @classmethod
    def probe(cls) -> dict:
        devices = ["cpu"]
        if _gpu_unavailable_reason() is None:
            runtime = cuda.cupy.cuda.runtime
            devices += [f"cupy:{i} ({runtime.getDeviceProperties(i)['name'].decode()})"
                        for i in range(runtime.getDeviceCount())]
        return {"version": chainer.__version__, "devices": devices}

    def __init__(self, spec: ModelSpec, options: BackendOptions = BackendOptions()):
        super().__init__(spec, options)
        self.replicas = None
        if options.devices > 1 or options.nodes > 1:
            self.replicas = parallel.Replicas(
                options, on_gpu=options.device != "cpu" and _gpu_unavailable_reason() is None)
        self.device = _select_device(options.device, self.replicas.local_rank if self.replicas else 0)
        on_gpu = self.device.xp is cuda.cupy
        if on_gpu:
            chainer.config.autotune = True  # cuDNN algorithm search, like cudnn.benchmark
        self.fetch_every = self.fetch_every_gpu if on_gpu else 1  # CPU steps are synchronous
        rng = np.random.RandomState(options.seed)  # the spec's init under --no-shared-init
        comm = self.replicas.comm if self.replicas and options.sync_bn else None  # --sync-bn
        self.G = models.Generator(spec, rng, comm)
        self.D = models.Discriminator(spec, rng, comm)
        self.opt_G, self.opt_D = self._adam(self.G), self._adam(self.D)
        for net in (self.G, self.D):
            net.to_device(self.device)
        if self.replicas:  # the optimizers training uses: ChainerMN's gradient-averaging ones
            self.train_opt_G, self.train_opt_D = map(self.replicas.optimizer, (self.opt_G, self.opt_D))
        else:
            self.train_opt_G, self.train_opt_D = self.opt_G, self.opt_D

    def parallel_info(self) -> dict:
        return self.replicas.info() if self.replicas else super().parallel_info()

    def _adam(self, net):
        adam = self.spec.adam
        # Every hyperparameter explicit; eta 1 and amsgrad/adabound off make it plain Adam,
        # and weight_decay_rate is the spec's (0: none).
        opt = chainer.optimizers.Adam(alpha=adam.lr, beta1=adam.beta1, beta2=adam.beta2,
                                      eps=adam.eps, eta=1.0, weight_decay_rate=adam.weight_decay,
                                      amsgrad=False, adabound=False)
        opt.setup(net)
        return opt

    # ----- device -----
    def device_info(self) -> dict:
        on_gpu = self.device.xp is cuda.cupy
        info = {"device": "gpu" if on_gpu else "cpu", "framework_version": chainer.__version__,
                "threads": _blas_threads()}
        if on_gpu:
            props = cuda.cupy.cuda.runtime.getDeviceProperties(self.device.device.id)
            info.update(name=props["name"].decode(), cupy_version=cuda.cupy.__version__,
                        cudnn=bool(cuda.cudnn_enabled))
        else:
            info.update(name=sysinfo.cpu_model(), numpy_version=np.__version__)
        return info

    def synchronize(self) -> None:
        if self.device.xp is cuda.cupy:
            self.device.device.synchronize()

    def peak_memory(self) -> dict:
        if self.device.xp is cuda.cupy:
            # The pool keeps freed blocks for reuse and returns none unless asked, so the bytes
            # it holds now are its high-water mark: the peak of what CuPy reserved, at least
            # the peak of live arrays.
            return {"bytes": int(cuda.cupy.get_default_memory_pool().total_bytes()),
                    "kind": "device-allocator"}
        return {"bytes": sysinfo.peak_rss_bytes(), "kind": "rss"}

    # ----- weights -----
    def _nets(self) -> dict:
        return {"G": self.G, "D": self.D}

    def _keys(self, net: str) -> list[str]:
        return [k for k in self.spec.parameter_shapes() if k.startswith(net + ".")]

    def load_weights(self, canonical: dict[str, np.ndarray]) -> None:
        weights.from_canonical(self._nets(), canonical)

    def export_weights(self) -> dict[str, np.ndarray]:
        return weights.to_canonical(self._nets(), self.spec.parameter_shapes())

    # ----- checkpoints -----
    CHECKPOINT = "updater.npz"

    def _updater(self, iteration: int = 0) -> training.DCGANUpdater:
        """An updater over this backend's models and optimizers: what a Trainer snapshot
        serializes (models with BN statistics, each Adam's t and moments, the iteration)."""
        updater = training.DCGANUpdater(training.HarnessBatches(()), self.G, self.D, self.opt_G,
                                        self.opt_D, self.device, self.spec.loss)
        updater.iteration = iteration
        return updater

    def save_checkpoint(self, folder) -> None:
        chainer.serializers.save_npz(str(folder / self.CHECKPOINT), self._updater())

    def load_checkpoint(self, folder) -> None:
        chainer.serializers.load_npz(str(folder / self.CHECKPOINT), self._updater())

    # ----- introspection -----
    def _links(self) -> dict:
        """{spec name: link} for every conv/deconv and BN (links share the canonical names)."""
        links = {}
        for layer in self.spec.layers:
            net = self._nets()[layer.net]
            links[layer.name] = getattr(net, f"{layer.kind}{layer.index}")
            if layer.batchnorm:
                links[layer.bn_name] = getattr(net, f"bn{layer.index}")
        return links

    def layer_output_shapes(self, z: np.ndarray, x: np.ndarray) -> dict[str, tuple[int, int, int]]:
        names = {id(link): name for name, link in self._links().items()}
        shapes: dict[str, tuple[int, int, int]] = {}

        class RecordShapes(chainer.LinkHook):
            def forward_postprocess(self, args):
                if id(args.link) in names:
                    shapes[names[id(args.link)]] = tuple(args.out.shape[1:])

        with RecordShapes():
            self.generate(z), self.discriminate(x)
        return shapes

    def trainable_parameter_counts(self) -> dict[str, int]:
        return {name: sum(p.size for p in link.params()) for name, link in self._links().items()}

    def apply_gradients(self, net: str, grads: dict[str, np.ndarray]) -> None:
        params = weights.trainable_parameters(self._nets(), self._keys(net))
        for key, g in grads.items():
            params[key].grad = self.device.send(np.array(g, np.float32))
        (self.opt_G if net == "G" else self.opt_D).update()

    # ----- compute -----
    def _forward(self, net, x: np.ndarray, train: bool) -> np.ndarray:
        with chainer.using_config("train", train), chainer.using_config("enable_backprop", False), \
                _frozen_running_statistics(net):
            out = net(self.device.send(np.asarray(x, np.float32)))
        return weights.to_numpy(out.array)

    def generate(self, z: np.ndarray, train: bool = False) -> np.ndarray:
        return self._forward(self.G, z, train)

    def discriminate(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        return self._forward(self.D, x, train)

    def gradients(self, real: np.ndarray, z: np.ndarray) -> dict:
        real_label, fake_label = self.spec.loss.real_label, self.spec.loss.fake_label
        bce = training.bce_with_logits
        real, z = training.to_device((real, z), self.device)
        with chainer.using_config("train", True), _frozen_running_statistics(self.G, self.D):
            fake = self.G(z)
            loss_d = bce(self.D(real), real_label) + bce(self.D(fake.array), fake_label)
            loss_g = bce(self.D(fake), real_label)
            grads = {}
            for net, loss in (("D", loss_d), ("G", loss_g)):
                params = weights.trainable_parameters(self._nets(), self._keys(net))
                for key, g in zip(params, chainer.grad([loss], list(params.values()))):
                    grads[key] = weights.to_numpy(g.array)
        return {"loss_d": float(loss_d.array), "loss_g": float(loss_g.array), "grads": grads}

    def _replica_slice(self, batch):
        """This replica's rows of a harness batch (the whole batch on one device)."""
        if not self.replicas:
            return batch
        rows = self.replicas.rows(batch[0].shape[0])
        return tuple(a[rows] for a in batch)

    def _global_losses(self, losses: np.ndarray) -> np.ndarray:
        """(k, 2) fetched losses -> the global batch's: the replicas' mean when data parallel."""
        return self.replicas.mean_losses(losses) if self.replicas else losses

    def train_step(self, real: np.ndarray, z: np.ndarray) -> tuple[float, float]:
        if self.replicas:
            self.replicas.share(self.G, self.D)
        real, z = training.to_device(self._replica_slice((real, z)), self.device)
        with chainer.using_config("train", True):
            losses = training.spec_iteration(self.G, self.D, self.train_opt_G, self.train_opt_D,
                                             real, z, self.spec.loss)
        if self.replicas:
            losses = self._global_losses(np.array([weights.to_numpy(x) for x in losses]))
        return float(losses[0]), float(losses[1])

    def train(self, batches, start, on_step) -> None:
        if self.replicas:
            self.replicas.share(self.G, self.D)
        batches = FetchTimer(batches)  # the harness's data work is not step time
        iterator = training.HarnessBatches(map(self._replica_slice, batches))
        updater = training.DCGANUpdater(iterator, self.G, self.D, self.train_opt_G, self.train_opt_D,
                                        self.device, self.spec.loss)
        progress = training.HarnessProgress(on_step, batches, self.fetch_every, start,
                                            reduce=self._global_losses)
        with chainer.using_config("train", True):
            training.run_trainer(updater, iterator, progress, start, out=self.trainer_out,
                                 log_every=self.log_every, snapshot_every=self.snapshot_every)
