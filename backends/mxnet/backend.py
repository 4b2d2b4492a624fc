"""MXNet backend (symbolic Module API).

Differences from the protocol's defaults worth knowing:
- Three modules: G; D, whose parameter gradients accumulate (grad_req 'add', zeroed before each D
  step) so the real and the fake pass, each with its own forward and batch statistics, add up
  before one D update; and D_G, bound on D's own parameter and auxiliary arrays (shared_module)
  with no parameter gradients, for the G step: D's input gradient (get_input_grads) drives
  G.backward, and D's weight gradients, which the G step discards, are never computed.
- MXNet updates BN running statistics in the *backward* pass (measured in 1.9.1, with and
  without oneDNN; forward with is_train=True leaves them alone), with the biased batch variance.
  Every train-mode forward of the iteration is followed by its backward, so G's BN is updated
  once and D's three times (real, fake, fake through the updated D), in that order.
  gradients() runs backward passes, so it saves and restores the auxiliary states.
- MXNet's engine is asynchronous on the CPU too: a step's time is taken after mx.nd.waitall().
  Losses are fetched every `fetch_every_gpu` steps on a GPU and every step on the CPU.
- options.threads works through OMP_NUM_THREADS, which MXNet reads once, at import (run_all.py
  sets it in the worker's environment); device_info() records what was in effect.
- peak_memory() on a GPU: MXNet exposes no allocator peak, only the device's free/total memory;
  the largest used (total - free, which includes the CUDA context and other processes) seen at
  the loss fetches is reported, labelled as such.
- Data parallel (devices > 1): the same modules over a list of contexts with a kvstore, see
  parallel.py.
"""
from __future__ import annotations

import os
import warnings

import mxnet as mx
import numpy as np

from backends.base import BackendBase, BackendOptions, BackendUnavailable
from backends.mxnet import models, parallel, weights
from common import sysinfo
from common.spec import ModelSpec
from common.harness.timing import FetchTimer, LossFetcher

# The thread settings MXNet's engine read at import (backends/mxnet/__init__.py imported mxnet
# just before this module); unset OMP_NUM_THREADS means MXNet's own choice.
_THREAD_ENV_AT_IMPORT = {name: os.environ.get(name)
                         for name in ("OMP_NUM_THREADS", "MXNET_CPU_WORKER_NTHREADS",
                                      "MXNET_OMP_MAX_THREADS")}
# oneDNN (MKLDNN) kernels change the CPU arithmetic (and need models.py's one-channel workaround).
_ONEDNN = (mx.runtime.Features().is_enabled("MKLDNN")
           and os.environ.get("MXNET_MKLDNN_ENABLED", "1") != "0")

# mxnet's C++ log switches, read when first used (at bind or at the first fallback), so they can
# follow options.verbose: the "Subgraph backend MKLDNN is activated" line at every bind, and the
# storage-fallback notices printed when oneDNN is disabled.
_QUIET_LOGS = {"MXNET_SUBGRAPH_VERBOSE": "0", "MXNET_STORAGE_FALLBACK_LOG_VERBOSE": "0"}


def _quiet(verbose: bool) -> None:
    if verbose:
        return
    for name, value in _QUIET_LOGS.items():
        os.environ.setdefault(name, value)  # an explicit user setting wins
    warnings.filterwarnings("ignore", module=r"mxnet(\.|$)")


def _gpu_count() -> int:
    try:
        return mx.context.num_gpus()
    except mx.base.MXNetError:  # a CUDA build on a machine without a usable driver
        return 0


def _select_context(requested: str) -> mx.Context:
    if requested == "cpu":
        return mx.cpu()
    if _gpu_count() > 0:
        return mx.gpu(0)
    if requested == "gpu":
        built = "" if mx.runtime.Features().is_enabled("CUDA") else \
            ", a build without CUDA (a CUDA build is a separate package, e.g. mxnet-cu112)"
        raise BackendUnavailable(f"--device gpu: mxnet {mx.__version__} sees no GPU{built}")
    return mx.cpu()


class _SpecInit(mx.init.Normal):
    """The spec's initialisation with MXNet's RNG (used only under --no-shared-init): weights
    N(0, init_std) (mx.init.Normal), gamma N(mean, std) instead of MXNet's constant 1; beta and
    the running statistics keep MXNet's 0 / 0 / 1, which are the spec's."""

    def __init__(self, spec: ModelSpec):
        super().__init__(spec.init_std)
        self._gamma = (spec.bn.gamma_init_mean, spec.bn.gamma_init_std)

    def _init_gamma(self, name, arr):
        mx.random.normal(*self._gamma, out=arr)


def _adam_params(adam) -> dict:
    """MXNet's adam with the spec's hyperparameters.

    mxnet's adam_update operator takes beta1, beta2, epsilon and lr as float32, so it computes
    m with (1 - f32(beta1)) and v with (1 - f32(beta2)); for beta2 = 0.999 that factor is
    0.000999987, and every update comes out 6.4e-6 (relative) larger than the spec's Adam
    (measured, tests/test_mxnet.py). m and v are linear in those factors (r1, r2 below) at every
    step, so lr·sqrt(r2)/r1 and epsilon·sqrt(r2) give exactly the spec's update, still in the
    folded convention (bias correction in the step size, computed by mx.optimizer.Adam in Python
    from the exact beta1 and beta2).
    Also: rescale_grad 1, as the loss is already a batch mean (Module's default is 1/batch); no
    clipping (clip_gradient None, the default); lazy_update concerns sparse gradients only, off
    to say so."""
    f32 = np.float32
    r1 = float(1 - f32(adam.beta1)) / (1 - adam.beta1)
    r2 = float(1 - f32(adam.beta2)) / (1 - adam.beta2)
    return {"learning_rate": adam.lr * np.sqrt(r2) / r1, "epsilon": adam.eps * np.sqrt(r2),
            "beta1": adam.beta1, "beta2": adam.beta2, "wd": adam.weight_decay,
            "rescale_grad": 1.0, "clip_gradient": None, "lazy_update": False}


def _executors(module: mx.mod.Module) -> list[mx.executor.Executor]:
    """One executor per context (data parallel), context 0's first."""
    return module._exec_group.execs  # noqa: SLF001


def _executor(module: mx.mod.Module) -> mx.executor.Executor:
    """The module's one executor (one context): its arg_dict, aux_dict and grad_dict are the live
    arrays. Module.get_params() returns host copies refreshed only after update(), so they miss
    the running statistics that backward() changes."""
    return module._exec_group.execs[0]  # noqa: SLF001 - as the Module API tutorial does


class Backend(BackendBase):
    name = "mxnet"
    adam_convention = "folded"      # lr·sqrt(1-b2^t)/(1-b1^t), eps added to sqrt(v)
    running_var_unbiased = False    # MXNet adds the biased batch variance
    fetch_every_gpu = 10
    data_parallel = True

    @classmethod
    def probe(cls) -> dict:
        return {"version": mx.__version__,
                "devices": ["cpu"] + [f"gpu:{i}" for i in range(_gpu_count())]}

    def __init__(self, spec: ModelSpec, options: BackendOptions = BackendOptions()):
        super().__init__(spec, options)
        _quiet(options.verbose)
        if options.channels_last or options.bf16:
            raise BackendUnavailable("the mxnet backend has no channels_last or bf16 fast path")
        self.ctx = _select_context(options.device)
        self.contexts = parallel.contexts(options, self.ctx, _gpu_count())
        mx.random.seed(options.seed, ctx="all")
        p = spec.preset
        self._image_shape = (p.channels, p.image_size, p.image_size)
        bound = len(self.contexts)  # the batch the modules are bound with: one image per context

        self.G = mx.mod.Module(models.generator(spec), data_names=(models.Z,), label_names=None,
                               context=self.contexts)
        self.G.bind(data_shapes=[(models.Z, (bound, p.nz))], for_training=True)
        self.G.init_params(initializer=_SpecInit(spec))

        d_symbol = models.discriminator(spec)
        shapes = dict(data_shapes=[(models.IMAGES, (bound,) + self._image_shape)],
                      label_shapes=[(models.LABEL, (bound,))])
        d_params = [n for n in d_symbol.list_arguments() if n not in (models.IMAGES, models.LABEL)]
        self.D = mx.mod.Module(d_symbol, data_names=(models.IMAGES,),
                               label_names=(models.LABEL,), context=self.contexts)
        self.D.bind(**shapes, for_training=True, inputs_need_grad=True,
                    grad_req=dict(dict.fromkeys(d_params, "add"),
                                  **{models.IMAGES: "write", models.LABEL: "null"}))
        self.D.init_params(initializer=_SpecInit(spec))
        self.D_G = mx.mod.Module(d_symbol, data_names=(models.IMAGES,),
                                 label_names=(models.LABEL,), context=self.contexts)
        self.D_G.bind(**shapes, for_training=True, inputs_need_grad=True, shared_module=self.D,
                      grad_req=dict(dict.fromkeys(d_params, "null"),
                                    **{models.IMAGES: "write", models.LABEL: "null"}))

        for module in (self.G, self.D):
            parallel.init_optimizer(module, self.contexts, _adam_params(spec.adam))
        self._labels: dict[int, tuple[mx.nd.NDArray, mx.nd.NDArray]] = {}
        self._device_used_peak = 0

    def parallel_info(self) -> dict:
        return parallel.info(self.contexts) if len(self.contexts) > 1 else super().parallel_info()

    # ----- device -----
    def device_info(self) -> dict:
        gpu = self.ctx.device_type == "gpu"
        name = sysinfo.gpu_models()[self.ctx.device_id] if gpu and sysinfo.gpu_models() else \
            sysinfo.cpu_model()
        return {"device": "gpu" if gpu else "cpu", "name": name,
                "framework_version": mx.__version__, "onednn": _ONEDNN and not gpu,
                "threads": {"requested": self.options.threads,
                            **{k: v for k, v in _THREAD_ENV_AT_IMPORT.items() if v is not None}}}

    def synchronize(self) -> None:
        mx.nd.waitall()

    def _sample_device_memory(self) -> None:
        if self.ctx.device_type == "gpu":
            free, total = mx.context.gpu_memory_info(self.ctx.device_id)
            self._device_used_peak = max(self._device_used_peak, total - free)

    def peak_memory(self) -> dict:
        if self.ctx.device_type == "gpu":
            self._sample_device_memory()
            return {"bytes": int(self._device_used_peak),
                    "kind": "device used, sampled (MXNet has no allocator peak)"}
        return {"bytes": sysinfo.peak_rss_bytes(), "kind": "rss"}

    # ----- weights -----
    def _named_arrays(self, context: int = 0) -> dict[str, dict[str, mx.nd.NDArray]]:
        """{net: {MXNet name: live NDArray}} for arguments and auxiliary states (of one context)."""
        out = {}
        for net, module in (("G", self.G), ("D", self.D)):
            exe = _executors(module)[context]
            out[net] = dict(exe.arg_dict, **exe.aux_dict)
        return out

    def load_weights(self, canonical: dict[str, np.ndarray]) -> None:
        for context in range(len(self.contexts)):  # every replica starts from the same weights
            weights.from_canonical(self._named_arrays(context), canonical)

    def export_weights(self) -> dict[str, np.ndarray]:
        return weights.to_canonical(self._named_arrays(), self.spec.parameter_shapes())

    # ----- checkpoints -----
    def _checkpoint_modules(self):
        return (("G", self.G), ("D", self.D))  # D_G shares D's arrays

    def save_checkpoint(self, folder) -> None:
        for net, module in self._checkpoint_modules():
            # Module.save_params's file format ("arg:"/"aux:" names), written from the live
            # executor arrays: get_params' host copies can miss the backward-updated aux states.
            exe = _executor(module)
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
        shapes = {}
        for net, module, data, inputs in (("G", self.G, models.Z, z),
                                          ("D", self.D, models.IMAGES, x)):
            layers = self.spec.generator if net == "G" else self.spec.discriminator
            names = [f"{layer.kind}{layer.index}" for layer in layers]
            names += [f"bn{layer.index}" for layer in layers if layer.batchnorm]
            internals = module.symbol.get_internals()
            group = mx.sym.Group([internals[f"{name}_output"] for name in names])
            exe = _executor(module)
            args = {n: a for n, a in exe.arg_dict.items() if n in group.list_arguments()}
            args[data] = mx.nd.array(inputs, ctx=self.ctx)
            # Bound with gradients: an inference-only bind would let mxnet's default oneDNN
            # subgraph pass fuse conv+BN nodes away (and it then fails on the argument count).
            grads = {n: mx.nd.zeros_like(a) for n, a in args.items()}
            exe = group.bind(self.ctx, args, args_grad=grads, aux_states=dict(exe.aux_dict))
            outputs = exe.forward(is_train=False)
            shapes.update({f"{net}.{name}": tuple(out.shape[1:])
                           for name, out in zip(names, outputs)})
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
        grad_dict = _executor(module).grad_dict
        for key, g in grads.items():
            grad_dict[weights.mxnet_key(key)[1]][:] = np.asarray(g, dtype=np.float32)
        module.update()

    # ----- compute -----
    def _array(self, array: np.ndarray) -> mx.nd.NDArray:
        return mx.nd.array(array, ctx=self.ctx, dtype=np.float32)

    def _targets(self, n: int) -> tuple[mx.nd.NDArray, mx.nd.NDArray]:
        if n not in self._labels:
            loss = self.spec.loss
            self._labels[n] = (mx.nd.full((n,), loss.real_label, ctx=self.ctx),
                               mx.nd.full((n,), loss.fake_label, ctx=self.ctx))
        return self._labels[n]

    def generate(self, z: np.ndarray, train: bool = False) -> np.ndarray:
        self.G.forward(mx.io.DataBatch([self._array(z)]), is_train=train)
        return self.G.get_outputs()[0].asnumpy()

    def discriminate(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        _, fake_t = self._targets(x.shape[0])  # the loss head needs a label; unused here
        self.D.forward(mx.io.DataBatch([self._array(x)], [fake_t]), is_train=train)
        return self.D.get_outputs()[1].asnumpy()

    @staticmethod
    def _param_grads(module: mx.mod.Module) -> dict[str, mx.nd.NDArray]:
        grad_dict = _executor(module).grad_dict
        return {name: grad_dict[name] for name in module._param_names}  # noqa: SLF001

    def _generator_forward(self, z: mx.nd.NDArray) -> mx.nd.NDArray:
        """G(z) in train mode: the one G pass of the iteration (its output buffer is G's own,
        overwritten only by G's next forward)."""
        self.G.forward(mx.io.DataBatch([z]), is_train=True)
        return self.G.get_outputs()[0]

    def _discriminator_backward(self, real: mx.nd.NDArray, fake: mx.nd.NDArray) -> mx.nd.NDArray:
        """loss_D's parameter gradients into D's (accumulating) gradient arrays; returns loss_D."""
        real_t, fake_t = self._targets(real.shape[0])
        for exe in _executors(self.D):
            for name in self.D._param_names:  # noqa: SLF001
                exe.grad_dict[name][:] = 0
        loss_d = None
        for images, target in ((real, real_t), (fake, fake_t)):
            self.D.forward(mx.io.DataBatch([images], [target]), is_train=True)
            self.D.backward()
            # One batch-mean loss per context (merged in order): their mean is the global batch's.
            loss = self.D.get_outputs()[0].mean()
            loss_d = loss if loss_d is None else loss_d + loss
        return loss_d

    def _generator_backward(self, fake: mx.nd.NDArray) -> mx.nd.NDArray:
        """loss_G's gradients into G's gradient arrays, through D_G (D's current weights, no
        D weight gradients): D's input gradient is G's output gradient. Returns loss_G."""
        real_t, _ = self._targets(fake.shape[0])
        self.D_G.forward(mx.io.DataBatch([fake], [real_t]), is_train=True)
        self.D_G.backward()
        loss_g = self.D_G.get_outputs()[0].mean()
        self.G.backward(self.D_G.get_input_grads())
        return loss_g

    def _step(self, real: mx.nd.NDArray, z: mx.nd.NDArray) -> tuple[mx.nd.NDArray, mx.nd.NDArray]:
        """SPEC.md's iteration, queued on the engine; returns the losses without a sync."""
        fake = self._generator_forward(z)
        loss_d = self._discriminator_backward(real, fake)
        self.D.update()
        loss_g = self._generator_backward(fake)
        self.G.update()
        return loss_d, loss_g

    def gradients(self, real: np.ndarray, z: np.ndarray) -> dict:
        aux = {net: dict(_executor(m).aux_dict) for net, m in (("G", self.G), ("D", self.D))}
        saved = {net: {k: v.copy() for k, v in arrays.items()} for net, arrays in aux.items()}
        try:
            fake = self._generator_forward(self._array(z))
            loss_d = self._discriminator_backward(self._array(real), fake)
            grads = {"D": {k: v.copy() for k, v in self._param_grads(self.D).items()}}
            loss_g = self._generator_backward(fake)
            grads["G"] = {k: v.copy() for k, v in self._param_grads(self.G).items()}
        finally:
            for net, arrays in aux.items():
                for k, v in arrays.items():
                    saved[net][k].copyto(v)
        return {"loss_d": float(loss_d.asscalar()), "loss_g": float(loss_g.asscalar()),
                "grads": weights.grads_to_canonical(grads, self.spec.parameter_shapes())}

    def train_step(self, real: np.ndarray, z: np.ndarray) -> tuple[float, float]:
        loss_d, loss_g = self._step(self._array(real), self._array(z))
        return float(loss_d.asscalar()), float(loss_g.asscalar())

    def train(self, batches, start, on_step) -> None:
        k = self.fetch_every_gpu if self.ctx.device_type == "gpu" else 1
        batches = FetchTimer(batches)  # the harness's data work is not step time
        fetcher = LossFetcher(on_step, batches, start, k, self._losses_to_numpy)
        for real, z in batches:
            fetcher.add(self._step(self._array(real), self._array(z)))
        fetcher.flush()

    def _losses_to_numpy(self, pending) -> np.ndarray:
        mx.nd.waitall()  # the steps' last updates too, not just the losses
        self._sample_device_memory()
        return mx.nd.stack(*[mx.nd.concat(d, g, dim=0) for d, g in pending]).asnumpy()
