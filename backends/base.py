"""The one protocol every backend implements. Backend modules document only their differences.

Layout: every `backends/<framework>/` has exactly the modules of `MODULES`, each defining at
least the public names listed there, with the same meaning and the same parameters (names, in
order) in every backend (tests/backends/test_shape.py checks both by reading the source, so a
new backend is told what to provide); only FRAMEWORK_SHAPED functions take the framework's own
objects:

- `__init__.py`: what must happen before the framework's first import (a shim, log switches).
- `backend.py`: `Backend(BackendBase)`, holding only the framework's differences; it sets
  `runtime` and `weights` to its own modules, which the shared behaviour below calls.
- `models.py`: G and D from the spec's layer table, every layer named by its
  `LayerSpec.local_name` / `bn_local_name`. `build(spec, ...)` makes them (with whatever the
  framework binds to them); `layers(nets, spec)` is the layer walk, (spec name, framework layer)
  for every conv/deconv and BN; `frozen_running_statistics(...)` is the context inside which
  train-mode passes leave every BN's running statistics as they were.
- `weights.py`: the one key map and layout conversion to and from the canonical format
  (common/canonical.py): `framework_key(canonical key)` -> (net, framework name),
  `to_framework_layout(array)`, `to_canonical_layout(array)`, and `from_canonical(nets, weights)`
  / `to_canonical(nets, keys)` built from them, for import and export alike (nets as the
  Backend's `nets()` gives them); gradients leave through BackendBase.export_gradients.
- `runtime.py`: the framework's process and device: `version()`, `gpu_unavailable_reason()`,
  `select_device(requested)` (the device and its spec-run settings, e.g. TF32 off),
  `is_gpu(device)`, `set_threads(threads)`, `thread_info()`, `quiet(verbose)`,
  `synchronize(device)`, `peak_memory(device)` (the allocator's peak, None without one).
- `training.py`: `spec_iteration(...)`, SPEC.md's iteration in one place (G once, D step, G
  step through the updated D), `bce_with_logits`, `adam(net, spec)`, and the framework's
  idiomatic loop around it. `adam(net, spec)` returns the framework's Adam optimizer for one
  net (as models.build makes it) with the values of `spec` (an AdamSpec, the only source of
  lr, betas and eps), bound to net where and as the framework binds an optimizer to its
  parameters: net comes first everywhere, and each backend keeps its idiom.
  torch.optim.Adam over net.parameters(); Chainer's Adam set up on the link; Keras's Adam built
  on net's trainable variables (its moments exist before fit); MXNet's through
  Module.init_optimizer on the module (the one way the Module API takes an optimizer, with the
  module's contexts and kvstore), returning the mx.optimizer.Adam the module then holds; and
  Optax's transformation, which binds to no parameters (its state, `init(params)`, is the
  iteration's carry): there net is not used, and G and D share one transformation.
- `parallel.py`: `Replicas(options, device)`, this process's part of a data-parallel run, with
  `rows(batch_size)` (the harness batch's rows this process trains on), `mean_losses(loss_d,
  loss_g)` (its losses to the global batch's, a pair) and `info()`.

The framework is imported inside those modules only, and they are imported only when that
backend runs (see backends/__init__.py). Bare loops (benchmarks/bare/) and tests use the same
public names, never a backend's private ones.

Arrays cross the boundary as numpy: z (N, nz) float32, images NCHW float32 in [-1, 1].

Data parallel (options.devices > 1): `train` runs the framework's own distributed engine
(backends/<framework>/parallel.py); never a hand-written gradient exchange. The harness still
hands every batch whole: each of the N replicas trains on its slice
`common.replicas.replica_rows(B, N, rank)` of it, gradients are the engine's mean over replicas,
and `on_step` gets the global-batch mean losses, averaged by the engine. BN normalises over each
replica's slice (per-replica BN, as the reference implementations do) unless options.sync_bn.
Engines with one process per replica (the registry's `launcher`, backends/__init__.py) run the worker in
every process; local rank 0 (of each host) writes the run's files. A backend without a
data-parallel path raises BackendUnavailable for devices > 1.
"""
from __future__ import annotations

import abc
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from common import sysinfo
from common.spec import ModelSpec
from common.timing import FetchTimer, LossFetcher

# The contract (module docstring): module of backends/<framework>/ -> public names it defines.
MODULES: dict[str, tuple[str, ...]] = {
    "__init__": (),
    "backend": ("Backend",),
    "models": ("build", "layers", "frozen_running_statistics"),
    "weights": ("framework_key", "to_framework_layout", "to_canonical_layout", "to_canonical",
                "from_canonical"),
    "runtime": ("version", "gpu_unavailable_reason", "select_device", "is_gpu", "set_threads",
                "thread_info", "quiet", "synchronize", "peak_memory"),
    "training": ("spec_iteration", "bce_with_logits", "adam"),
    "parallel": ("Replicas",),
}
# ... and the methods of parallel.Replicas.
REPLICAS_METHODS: tuple[str, ...] = ("rows", "mean_losses", "info")
# Contract functions whose parameters are the framework's own objects (what it binds to its nets;
# what its iteration runs on): the same name and meaning everywhere, the arguments its own.
FRAMEWORK_SHAPED: tuple[str, ...] = ("build", "spec_iteration")

# on_step(iteration, loss_d, loss_g, seconds): seconds is the step's device-synchronised time,
# excluding time spent fetching from `batches` (common.timing.FetchTimer): that is harness time.
# The harness times, logs, checks divergence and checkpoints here, identically for every backend;
# an exception raised by it (divergence, interrupt) ends the backend's loop.
OnStep = Callable[[int, float, float, float], None]


class BackendUnavailable(RuntimeError):
    """The backend cannot run as asked (framework missing, no GPU it can use): a clear reason."""


# What a backend is built with: defined by run_all.py's options (common/options.py, the fields
# marked backend=True), so an option reaches the backend without being restated here.
from common.options import BackendOptions  # noqa: E402  (re-exported: backends.base.BackendOptions)


class BackendBase(abc.ABC):
    name: str = ""  # registry name
    # Real framework differences the parity tests model instead of hiding (SPEC.md):
    # where Adam's eps sits ("pytorch": added to the bias-corrected sqrt(v); "folded": bias
    # correction folded into the step size, as Keras, MXNet and Chainer do) ...
    adam_convention: str = "pytorch"
    # ... and whether BN's running variance takes the unbiased batch variance (x m/(m-1)).
    running_var_unbiased: bool = True
    # Whether options.devices > 1 and options.sync_bn have an engine behind them here.
    data_parallel: bool = False
    sync_bn_supported: bool = False
    no_data_parallel = "no data-parallel path in this version"  # why not, where data_parallel is off

    # The backend's own runtime.py and weights.py (MODULES), which the shared methods call.
    runtime = weights = None
    replicas = None  # its parallel.Replicas when data parallel (options.devices > 1)
    # Losses fetched every this many steps on a GPU, where a fetch is a device sync (see train).
    fetch_every_gpu: int = 1

    def __init__(self, spec: ModelSpec, options: BackendOptions = BackendOptions()):
        self.spec, self.options = spec, options
        self.device = None  # the framework's device object, from runtime.select_device
        if (options.devices > 1 or options.nodes > 1) and not self.data_parallel:
            raise BackendUnavailable(f"--devices {options.devices}: the {self.name} backend: "
                                     f"{self.no_data_parallel}; run it with --devices 1")
        if options.sync_bn and not self.sync_bn_supported:
            raise BackendUnavailable(f"--sync-bn: the {self.name} backend has no synchronised BN; "
                                     "leave --sync-bn off (per-replica BN)")

    @classmethod
    def probe(cls) -> dict:
        """Framework version and the devices it sees, e.g. {"version": "2.13.0", "devices": ["cpu"]}."""
        return {"version": cls.runtime.version(), "devices": ["cpu", *cls.gpu_devices()]}

    @classmethod
    def gpu_devices(cls) -> list[str]:
        """The GPUs the framework sees, each as "<kind>:<index> (<model>)"; probe's list after "cpu"."""
        return []

    def parallel_info(self) -> dict:
        """{"devices": devices per node, "replicas": total replicas, "engine": what trains them}."""
        return self.replicas.info() if self.replicas else {"devices": 1, "replicas": 1, "engine": "single device"}

    # ----- device -----
    @property
    def on_gpu(self) -> bool:
        return self.runtime.is_gpu(self.device)

    @property
    def fetch_every(self) -> int:
        """Steps per loss fetch: `fetch_every_gpu` on a GPU; 1 on the CPU, where each step is
        synchronous already."""
        return self.fetch_every_gpu if self.on_gpu else 1

    def device_info(self) -> dict:
        """{"device": "cpu" | "gpu", "name": human-readable model, "framework_version": ...,
        "threads": {...}, ...device_details()}."""
        return {"device": "gpu" if self.on_gpu else "cpu",
                "name": self.gpu_name() if self.on_gpu else sysinfo.cpu_model(),
                "framework_version": self.runtime.version(), "threads": self.runtime.thread_info(),
                **self.device_details()}

    def gpu_name(self) -> str:
        """The model of the GPU this backend runs on (device_info's name on a GPU)."""
        return "gpu"

    def device_details(self) -> dict:
        """What device_info adds for this framework (its fast paths, libraries); may replace keys."""
        return {}

    def synchronize(self) -> None:
        """Block until all queued device work is done (a timer may stop only after this)."""
        self.runtime.synchronize(self.device)

    def peak_memory(self) -> dict:
        """{"bytes": int, "kind": "device-allocator" | "rss" | ...}: the framework allocator's
        peak on a GPU, else the process's peak resident set."""
        return peak_memory_or_rss(self.runtime.peak_memory(self.device))

    # ----- weights -----
    weight_copies = 1  # copies of the weights this process holds (one per replica in one process)

    def nets(self, copy: int = 0) -> dict:
        """{"G": ..., "D": ...} as weights.py reads and writes them (copy: which of
        `weight_copies`): the one hook of load_weights and export_weights."""
        return {"G": self.G, "D": self.D}

    def load_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Load canonical weights (common/canonical.py), including BN running statistics."""
        for copy in range(self.weight_copies):  # every replica starts from the same weights
            self.weights.from_canonical(self.nets(copy), weights)

    def export_weights(self) -> dict[str, np.ndarray]:
        """Canonical weights: float32, PyTorch layout, exactly the spec's keys (copy 0's)."""
        return self.weights.to_canonical(self.nets(), self.spec.parameter_shapes())

    def export_gradients(self, named: dict[str, dict]) -> dict[str, np.ndarray]:
        """{net: {framework name: gradient}} -> {canonical key: gradient in the canonical layout}
        for every trainable tensor (spec.trainable_keys): gradients()'s "grads"."""
        return gather(named, self.spec.trainable_keys(), self.weights.framework_key,
                      self.weights.to_canonical_layout)

    # ----- checkpoints (common/harness/checkpoint.py owns the folder, manifest and checksums) -----
    @abc.abstractmethod
    def save_checkpoint(self, folder: Path) -> None:
        """Write the framework's native checkpoint into the existing, empty `folder`: both models
        with their BN running statistics and both optimizers' state with their step counts,
        everything train() continues from. Called between train() calls, the device synchronised."""

    @abc.abstractmethod
    def load_checkpoint(self, folder: Path) -> None:
        """Restore what save_checkpoint wrote (its checksums already verified), so that train()
        from the checkpoint's iteration computes what the uninterrupted run computed."""

    # ----- introspection, for the parametrised tests -----
    @abc.abstractmethod
    def layer_output_shapes(self, z: np.ndarray, x: np.ndarray) -> dict[str, tuple[int, int, int]]:
        """Per-sample output shape of every conv/deconv and BN, observed on the framework's own
        layers while G(z) and D(x) run, keyed by the spec's names ('G.deconv0', 'G.bn0', ...)
        and given as NCHW (C, H, W) whatever layout the framework uses inside."""

    @abc.abstractmethod
    def trainable_parameter_counts(self) -> dict[str, int]:
        """Trainable parameters per layer, counted from the framework's own variables (not the
        canonical export), keyed by the spec's names ('G.deconv0', 'G.bn0', ...)."""

    @abc.abstractmethod
    def apply_gradients(self, net: str, grads: dict[str, np.ndarray]) -> None:
        """One step of net's ('G' or 'D') own optimizer with these gradients (canonical keys and
        layout, every trainable tensor of net): tests the optimizer against a numpy model."""

    # ----- compute -----
    def generate(self, z: np.ndarray, train: bool = False) -> np.ndarray:
        """G(z) as NCHW float32. train=False normalises with BN running statistics (inference);
        train=True with the batch's own statistics. Neither updates running statistics."""
        return self.forward("G", z, train)

    def discriminate(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """D(x) logits, shape (N,). BN modes as in generate(); no running-statistic update."""
        return self.forward("D", x, train)

    @abc.abstractmethod
    def forward(self, net: str, x: np.ndarray, train: bool) -> np.ndarray:
        """net's ("G" or "D") forward pass on a host array (NCHW images), the result a float32
        host array (NCHW images, (N,) logits): generate and discriminate, without gradients."""

    @abc.abstractmethod
    def gradients(self, real: np.ndarray, z: np.ndarray) -> dict:
        """Losses and gradients at the current weights, for parity tests; changes nothing.
        D's gradients are of loss_D, G's of loss_G through the same (not updated) D, all BN in
        train mode: {"loss_d": float, "loss_g": float, "grads": {canonical key: array}} with
        gradients in the canonical layout for every trainable tensor."""

    @abc.abstractmethod
    def train_step(self, real: np.ndarray, z: np.ndarray) -> tuple[float, float]:
        """One iteration of SPEC.md (G once, D step, G step with the updated D): (loss_D, loss_G)."""

    @abc.abstractmethod
    def train(self, batches: Iterable[tuple[np.ndarray, np.ndarray]], start: int, on_step: OnStep) -> None:
        """The framework's idiomatic loop over (real, z) batches for iterations start, start+1, ...,
        calling on_step once per iteration in order. Losses may be fetched every K steps where a
        fetch forces a device sync; each step still gets its own call."""

    def fetching_loop(self, batches: Iterable[tuple[np.ndarray, np.ndarray]], start: int,
                      on_step: OnStep, step: Callable, losses_to_numpy: Callable,
                      stage: Callable | None = None) -> None:
        """The plain loop of `train`: step(real, z) per batch, its losses left on the device and
        fetched every `fetch_every` steps (losses_to_numpy(pending) -> (k, 2) is the sync), the K
        steps timed together (common.timing.LossFetcher).

        stage(real, z) -> (real, z) on the device, issued asynchronously: then batch i+1 is
        taken from the harness and staged right after step i is queued, before any sync, so
        the harness's work and the copy overlap step i and the step after a fetch starts at
        once (staged_loop). The batches and their order are the harness's."""
        batches = FetchTimer(batches)  # the harness's data work is not step time
        fetcher = LossFetcher(on_step, batches, start, self.fetch_every, losses_to_numpy)
        if stage is None:
            for real, z in batches:
                fetcher.add(step(real, z))
        else:
            staged_loop(batches, step, stage, fetcher.add)
        fetcher.flush()


def staged_loop(batches, step: Callable, stage: Callable, add: Callable) -> None:
    """add(step(*staged batch i)) for every batch, batch i+1 taken and staged after step i is
    queued and before add (which may sync): one batch in flight ahead of the device."""
    it = iter(batches)
    batch = next(it, None)
    staged = stage(*batch) if batch is not None else None
    while staged is not None:
        losses = step(*staged)
        batch = next(it, None)
        staged = stage(*batch) if batch is not None else None
        add(losses)


def wants_gpu(requested: str, gpu_unavailable_reason: Callable[[], str | None]) -> bool:
    """The GPU test of every runtime.select_device: "cpu" never, "auto" a GPU when one can be
    used, "gpu" a GPU or BackendUnavailable with the reason: never a silent CPU fallback."""
    if requested == "cpu":
        return False
    reason = gpu_unavailable_reason()
    if reason is not None and requested == "gpu":
        raise BackendUnavailable(f"--device gpu: {reason}")
    return reason is None


def gather(arrays: dict[str, dict], keys, framework_key: Callable,
           to_canonical_layout: Callable) -> dict[str, np.ndarray]:
    """{canonical key: to_canonical_layout(arrays[net][name])} with (net, name) =
    framework_key(key): a weights.py's export over {net: {framework name: array}}, and the
    gradient export (BackendBase.export_gradients)."""
    out = {}
    for key in keys:
        net, name = framework_key(key)
        out[key] = to_canonical_layout(arrays[net][name])
    return out


def renamed_key(canonical: str, names: dict[str, str], form: str = "{layer}.{tensor}") -> tuple[str, str]:
    """A weights.py's framework_key: 'G.bn0.gamma' -> ('G', form with the layer and the
    framework's name of the tensor, names.get(tensor, tensor))."""
    net, layer, tensor = canonical.split(".")
    return net, form.format(layer=layer, tensor=names.get(tensor, tensor))


def layer_walk(nets: dict, spec: ModelSpec, find: Callable):
    """models.layers' walk: (spec name, find(nets[net], local name)) for every conv/deconv and
    BN, in the spec's order; `find` is how the framework looks a layer up by its name."""
    for layer in spec.layers:
        net = nets[layer.net]
        yield layer.name, find(net, layer.local_name)
        if layer.batchnorm:
            yield layer.bn_name, find(net, layer.bn_local_name)


def peak_memory_or_rss(device_peak: dict | None) -> dict:
    """runtime.peak_memory's answer, else (the CPU, or no allocator peak) the process's peak
    resident set: each backend runs in its own process."""
    return device_peak if device_peak is not None else {"bytes": sysinfo.peak_rss_bytes(), "kind": "rss"}
