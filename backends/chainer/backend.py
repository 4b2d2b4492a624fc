"""Chainer backend.

Differences from the protocol's defaults worth knowing:
- train() is Chainer's Trainer loop (training.py); train_step() runs the same iteration
  function directly, without a Trainer.
- Adam folds the bias correction into the step size (adam_convention "folded"); BN adds the
  unbiased batch variance to its running variance (as PyTorch does).
- Train-mode forwards that must not touch the running statistics save and restore them
  (models.frozen_running_statistics): Chainer's BN link always updates them in train mode.
- On a GPU (CuPy), losses are fetched every `fetch_every_gpu` steps (one sync per fetch), and
  train()'s batches reach the device through `stager` (runtime.batch_stager: pinned buffers, a
  copy stream) instead of device.send; None on the CPU.
- Data parallel (devices > 1): ChainerMN under mpiexec, see parallel.py.
"""
from __future__ import annotations

import numpy as np

from backends.base import BackendBase, BackendOptions
from backends.chainer import models, parallel, runtime, training, weights
from common.spec import ModelSpec
from common.timing import FetchTimer

chainer = runtime.chainer
cuda = runtime.cuda


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

    runtime, weights = runtime, weights

    @classmethod
    def gpu_devices(cls) -> list[str]:
        if runtime.gpu_unavailable_reason() is not None:
            return []
        cuda_runtime = cuda.cupy.cuda.runtime
        return [f"cupy:{i} ({cuda_runtime.getDeviceProperties(i)['name'].decode()})"
                for i in range(cuda_runtime.getDeviceCount())]

    def __init__(self, spec: ModelSpec, options: BackendOptions = BackendOptions()):
        super().__init__(spec, options)
        self.device = runtime.select_device(options.device)
        self.replicas = None
        if options.devices > 1 or options.nodes > 1:
            self.replicas = parallel.Replicas(options, self.device)
        rng = np.random.RandomState(options.seed)  # the spec's init under --no-shared-init
        comm = self.replicas.comm if self.replicas and options.sync_bn else None  # --sync-bn
        self.G, self.D = models.build(spec, rng, comm)
        self.opt_G, self.opt_D = training.adam(self.G, spec.adam), training.adam(self.D, spec.adam)
        for net in (self.G, self.D):
            net.to_device(self.device)
        self.stager = runtime.batch_stager(self.device)  # train()'s converter on a GPU
        if self.replicas:  # the optimizers training uses: ChainerMN's gradient-averaging ones
            self.train_opt_G, self.train_opt_D = map(self.replicas.optimizer, (self.opt_G, self.opt_D))
        else:
            self.train_opt_G, self.train_opt_D = self.opt_G, self.opt_D

    # ----- device -----
    def gpu_name(self) -> str:
        return cuda.cupy.cuda.runtime.getDeviceProperties(self.device.device.id)["name"].decode()

    def device_details(self) -> dict:
        if not self.on_gpu:
            return {"numpy_version": np.__version__}
        # cudnn: whether the convolutions go through cuDNN (CuPy 14 has none: then CuPy's own
        # kernels), with the CUDA runtime and cuDNN versions (runtime.build_info)
        build = runtime.build_info()
        return {"cupy_version": cuda.cupy.__version__, "cudnn": bool(build["cudnn"]),
                "cudnn_version": build["cudnn_version"], "cuda_runtime": build["cuda_runtime"],
                "staging": self.stager.info() if self.stager else "device.send"}

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
    def layer_output_shapes(self, z: np.ndarray, x: np.ndarray) -> dict[str, tuple[int, int, int]]:
        names = {id(link): name for name, link in models.layers(self.nets(), self.spec)}
        shapes: dict[str, tuple[int, int, int]] = {}

        class RecordShapes(chainer.LinkHook):
            def forward_postprocess(self, args):
                if id(args.link) in names:
                    shapes[names[id(args.link)]] = tuple(args.out.shape[1:])

        with RecordShapes():
            self.generate(z), self.discriminate(x)
        return shapes

    def trainable_parameter_counts(self) -> dict[str, int]:
        return {name: sum(p.size for p in link.params())
                for name, link in models.layers(self.nets(), self.spec)}

    def apply_gradients(self, net: str, grads: dict[str, np.ndarray]) -> None:
        params = weights.trainable_parameters(self.nets(), self.spec.trainable_keys(net))
        for key, g in grads.items():
            params[key].grad = self.device.send(np.array(g, np.float32))
        (self.opt_G if net == "G" else self.opt_D).update()

    # ----- compute -----
    def forward(self, net: str, x: np.ndarray, train: bool) -> np.ndarray:
        link = self.nets()[net]
        with chainer.using_config("train", train), chainer.using_config("enable_backprop", False), \
                models.frozen_running_statistics(link):
            out = link(self.device.send(np.asarray(x, np.float32)))
        return weights.to_canonical_layout(out.array)

    def gradients(self, real: np.ndarray, z: np.ndarray) -> dict:
        real_label, fake_label = self.spec.loss.real_label, self.spec.loss.fake_label
        bce = training.bce_with_logits
        real, z = training.to_device((real, z), self.device)
        with chainer.using_config("train", True), models.frozen_running_statistics(self.G, self.D):
            fake = self.G(z)
            loss_d = bce(self.D(real), real_label) + bce(self.D(fake.array), fake_label)
            loss_g = bce(self.D(fake), real_label)
            grads = {}
            for net, loss in (("D", loss_d), ("G", loss_g)):
                params = weights.trainable_parameters(self.nets(), self.spec.trainable_keys(net))
                grads[net] = {weights.framework_key(key)[1]: g.array
                              for key, g in zip(params, chainer.grad([loss], list(params.values())))}
        return {"loss_d": float(loss_d.array), "loss_g": float(loss_g.array),
                "grads": self.export_gradients(grads)}

    def _replica_slice(self, batch):
        """This replica's rows of a harness batch (the whole batch on one device)."""
        if not self.replicas:
            return batch
        rows = self.replicas.rows(batch[0].shape[0])
        return tuple(a[rows] for a in batch)

    def _global_losses(self, losses: np.ndarray) -> np.ndarray:
        """(k, 2) fetched losses -> the global batch's: the replicas' mean when data parallel."""
        if not self.replicas:
            return losses
        return np.stack(self.replicas.mean_losses(losses[:, 0], losses[:, 1]), axis=1)

    def train_step(self, real: np.ndarray, z: np.ndarray) -> tuple[float, float]:
        if self.replicas:
            self.replicas.share(self.G, self.D)
        real, z = training.to_device(self._replica_slice((real, z)), self.device)
        with chainer.using_config("train", True):
            losses = training.spec_iteration(self.G, self.D, self.train_opt_G, self.train_opt_D,
                                             real, z, self.spec.loss)
        if self.replicas:
            losses = self.replicas.mean_losses(*(weights.to_canonical_layout(x) for x in losses))
        return float(losses[0]), float(losses[1])

    def train(self, batches, start, on_step) -> None:
        if self.replicas:
            self.replicas.share(self.G, self.D)
        batches = FetchTimer(batches)  # the harness's data work is not step time
        iterator = training.HarnessBatches(map(self._replica_slice, batches))
        updater = training.DCGANUpdater(iterator, self.G, self.D, self.train_opt_G, self.train_opt_D,
                                        self.device, self.spec.loss,
                                        converter=self.stager or training.to_device)
        progress = training.HarnessProgress(on_step, batches, self.fetch_every, start,
                                            reduce=self._global_losses)
        with chainer.using_config("train", True):
            training.run_trainer(updater, iterator, progress, start, out=self.trainer_out,
                                 log_every=self.log_every, snapshot_every=self.snapshot_every)
