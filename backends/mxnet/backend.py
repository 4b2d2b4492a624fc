"""MXNet backend (symbolic Module API).

Differences from the protocol's defaults worth knowing:
- Three modules (models.build): G; D, whose parameter gradients accumulate (grad_req 'add',
  zeroed before each D step) so the real and the fake pass, each with its own forward and batch
  statistics, add up before one D update; and D_G, bound on D's own parameter and auxiliary
  arrays (shared_module) with no parameter gradients, for the G step: D's input gradient
  (get_input_grads) drives G.backward, and D's weight gradients, which the G step discards, are
  never computed.
- BN running statistics update in the backward pass (training.py); gradients() runs backward
  passes, so it keeps them frozen (models.frozen_running_statistics).
- MXNet's engine is asynchronous on the CPU too: a step's time is taken after mx.nd.waitall().
  Losses are fetched every `fetch_every_gpu` steps on a GPU and every step on the CPU.
- options.threads works through OMP_NUM_THREADS, which MXNet reads once, at import (set in the
  worker's environment, common/harness/child.py); device_info() records what was in effect.
- options.bf16 is an ablation, not a best path: the graphs with MXNet AMP's bf16 casts
  (models.bf16_graph): 2x slower than float32 on a CPU, and crashes on dcgan64
  (benchmarks/README.md#mxnets-and-chainers-none).
- peak_memory() on a GPU is the largest device memory in use sampled (runtime.py).
- Data parallel (devices > 1): the same modules over a list of contexts with a kvstore; across
  hosts (nodes > 1) the dist_sync kvstore, node 0 starting ps-lite's scheduler and server: see
  parallel.py.
"""
from __future__ import annotations

import contextlib

import mxnet as mx
import numpy as np

from backends.base import BackendBase, BackendOptions, BackendUnavailable
from backends.mxnet import models, parallel, runtime, training, weights
from common import sysinfo
from common.spec import ModelSpec


class Backend(BackendBase):
    name = "mxnet"
    adam_convention = "folded"      # lr·sqrt(1-b2^t)/(1-b1^t), eps added to sqrt(v)
    running_var_unbiased = False    # MXNet adds the biased batch variance
    fetch_every_gpu = 10
    data_parallel = True
    runtime, weights = runtime, weights

    @classmethod
    def gpu_devices(cls) -> list[str]:
        return [f"gpu:{i}" for i in range(runtime.gpu_count())]

    def __init__(self, spec: ModelSpec, options: BackendOptions = BackendOptions()):
        super().__init__(spec, options)
        runtime.quiet(options.verbose)
        if options.channels_last:
            raise BackendUnavailable("the mxnet backend has no channels_last fast path")
        self.device = runtime.select_device(options.device)
        parallel_run = options.devices > 1 or options.nodes > 1
        self.replicas = parallel.Replicas(options, self.device) if parallel_run else None
        self.contexts = self.replicas.contexts if self.replicas else [self.device]
        mx.random.seed(options.seed, ctx="all")
        self.G, self.D, self.D_G = models.build(spec, self.contexts, bf16=options.bf16)
        for module in (self.G, self.D):
            training.adam(module, spec.adam)
        self._labels: dict[int, tuple[mx.nd.NDArray, mx.nd.NDArray]] = {}

    # ----- device -----
    def gpu_name(self) -> str:
        gpus = sysinfo.gpu_models()  # nvidia-smi's: MXNet names no device model
        return gpus[self.device.device_id] if gpus else sysinfo.cpu_model()

    def device_details(self) -> dict:
        return {"onednn": runtime.ONEDNN and not self.on_gpu, "bf16_amp_graph": self.options.bf16,
                "threads": {"requested": self.options.threads, **runtime.thread_info()}}

    # ----- weights -----
    @property
    def weight_copies(self) -> int:
        return len(self.contexts)  # every context holds its own arrays

    def nets(self, copy: int = 0) -> dict[str, dict[str, mx.nd.NDArray]]:
        """{net: {MXNet name: live NDArray}} for arguments and auxiliary states (of one context)."""
        out = {}
        for net, module in (("G", self.G), ("D", self.D)):
            exe = models.executors(module)[copy]
            out[net] = dict(exe.arg_dict, **exe.aux_dict)
        return out

    # ----- checkpoints -----
    def _checkpoint_modules(self):
        return (("G", self.G), ("D", self.D))  # D_G shares D's arrays

    def save_checkpoint(self, folder) -> None:
        for net, module in self._checkpoint_modules():
            # Module.save_params's file format ("arg:"/"aux:" names), written from the live
            # executor arrays: get_params' host copies can miss the backward-updated aux states.
            exe = models.executor(module)
            mx.nd.save(str(folder / f"{net}.params"),
                       {**{f"arg:{n}": exe.arg_dict[n] for n in module._param_names},  # noqa: SLF001
                        **{f"aux:{n}": a for n, a in exe.aux_dict.items()}})
            # The updater's states (Adam's m, v) with the optimizer itself: it holds the per-
            # parameter step counts of the bias correction, which save_optimizer_states drops.
            with open(folder / f"{net}.states", "wb") as f:
                f.write(module._updater.get_states(dump_optimizer=True))  # noqa: SLF001

    def load_checkpoint(self, folder) -> None:
        for net, module in self._checkpoint_modules():
            module.load_params(str(folder / f"{net}.params"))
            # A pickle: common/harness/checkpoint.py has verified its sha256 against the manifest.
            module._updater.set_states((folder / f"{net}.states").read_bytes())  # noqa: SLF001
            module._optimizer = module._updater.optimizer  # noqa: SLF001 - the one it now uses

    # ----- introspection -----
    def layer_output_shapes(self, z: np.ndarray, x: np.ndarray) -> dict[str, tuple[int, int, int]]:
        """Runs every layer's own output node (symbol internals) on z and x in inference mode."""
        nodes = list(models.layers({"G": self.G, "D": self.D}, self.spec))
        shapes = {}
        for net, module, data, inputs in (("G", self.G, models.Z, z),
                                          ("D", self.D, models.IMAGES, x)):
            names, outputs = zip(*[(name, node) for name, node in nodes if name.startswith(net + ".")])
            group = mx.sym.Group(list(outputs))
            exe = models.executor(module)
            args = {n: a for n, a in exe.arg_dict.items() if n in group.list_arguments()}
            args[data] = mx.nd.array(inputs, ctx=self.device)
            # Bound with gradients: an inference-only bind would let mxnet's default oneDNN
            # subgraph pass fuse conv+BN nodes away (and it then fails on the argument count).
            grads = {n: mx.nd.zeros_like(a) for n, a in args.items()}
            exe = group.bind(self.device, args, args_grad=grads, aux_states=dict(exe.aux_dict))
            outputs = exe.forward(is_train=False)
            shapes.update({name: tuple(out.shape[1:]) for name, out in zip(names, outputs)})
        return shapes

    def trainable_parameter_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for net, module in (("G", self.G), ("D", self.D)):
            trainable, _ = module.get_params()  # arguments that are parameters (no aux states)
            for name, array in trainable.items():
                key = f"{net}.{weights.layer_name(name)}"
                counts[key] = counts.get(key, 0) + int(np.prod(array.shape))
        return counts

    def apply_gradients(self, net: str, grads: dict[str, np.ndarray]) -> None:
        module = self.G if net == "G" else self.D
        grad_dict = models.executor(module).grad_dict
        for key, g in grads.items():
            grad_dict[weights.framework_key(key)[1]][:] = weights.to_framework_layout(g)
        module.update()

    # ----- compute -----
    def array(self, array: np.ndarray) -> mx.nd.NDArray:
        """A host array as this backend's input: float32 on its (first) device. On a GPU the
        engine copies it on its copy workers' own stream, after no queued step: nothing to stage
        (docs/gpu.md, "The data path")."""
        return mx.nd.array(array, ctx=self.device, dtype=np.float32)

    def targets(self, n: int) -> tuple[mx.nd.NDArray, mx.nd.NDArray]:
        """The loss's (real, fake) label arrays for a batch of n."""
        if n not in self._labels:
            loss = self.spec.loss
            self._labels[n] = (mx.nd.full((n,), loss.real_label, ctx=self.device),
                               mx.nd.full((n,), loss.fake_label, ctx=self.device))
        return self._labels[n]

    def forward(self, net: str, x: np.ndarray, train: bool) -> np.ndarray:
        if net == "G":
            self.G.forward(mx.io.DataBatch([self.array(x)]), is_train=train)
            return self.G.get_outputs()[0].asnumpy()
        _, fake_t = self.targets(x.shape[0])  # the loss head needs a label; unused here
        self.D.forward(mx.io.DataBatch([self.array(x)], [fake_t]), is_train=train)
        return self.D.get_outputs()[1].asnumpy()

    def gradients(self, real: np.ndarray, z: np.ndarray) -> dict:
        real_t, fake_t = self.targets(real.shape[0])
        with models.frozen_running_statistics(self.G, self.D):
            fake = training.generator_forward(self.G, self.array(z))
            loss_d = training.discriminator_backward(self.D, self.array(real), fake, real_t, fake_t)
            grads = {"D": {k: v.copy() for k, v in models.param_grads(self.D).items()}}
            loss_g = training.generator_backward(self.G, self.D_G, fake, real_t)
            grads["G"] = {k: v.copy() for k, v in models.param_grads(self.G).items()}
        return {"loss_d": float(loss_d.asscalar()), "loss_g": float(loss_g.asscalar()),
                "grads": self.export_gradients(grads)}

    def _step(self, real: np.ndarray, z: np.ndarray) -> tuple[mx.nd.NDArray, mx.nd.NDArray]:
        """One iteration on the harness batch (this host's rows of it across hosts), the
        losses left on the engine."""
        if self.replicas:
            rows = self.replicas.rows(real.shape[0])
            real, z = real[rows], z[rows]
        losses = training.spec_iteration(self.G, self.D, self.D_G, self.array(real), self.array(z),
                                         *self.targets(real.shape[0]))
        return self.replicas.mean_losses(*losses) if self.replicas else losses

    def train_step(self, real: np.ndarray, z: np.ndarray) -> tuple[float, float]:
        loss_d, loss_g = self._step(real, z)
        return float(loss_d.asscalar()), float(loss_g.asscalar())

    def train(self, batches, start, on_step) -> None:
        with self.replicas.training() if self.replicas else contextlib.nullcontext():
            self.fetching_loop(batches, start, on_step, self._step, self._losses_to_numpy)

    def _losses_to_numpy(self, pending) -> np.ndarray:
        mx.nd.waitall()  # the steps' last updates too, before the memory sample
        runtime.sample_memory(self.device)
        return training.losses_to_numpy(pending)
