"""The one protocol every backend implements. Backend modules document only their differences.

Layout (the same in every `backends/<framework>/`): `models.py` builds G and D from the spec's
layer table, `weights.py` holds the one key map and layout conversion to and from the canonical
format, `backend.py` defines `Backend(BackendBase)`. The framework is imported inside those
modules only, and they are imported only when that backend runs (see backends/__init__.py).

Arrays cross the boundary as numpy: z (N, nz) float32, images NCHW float32 in [-1, 1].

Data parallel (options.devices > 1): `train` runs the framework's own distributed engine
(backends/<framework>/parallel.py); never a hand-written gradient exchange. The harness still
hands every batch whole: each of the N replicas trains on its slice
`common.harness.replicas.replica_rows(B, N, rank)` of it, gradients are the engine's mean over replicas,
and `on_step` gets the global-batch mean losses, averaged by the engine. BN normalises over each
replica's slice (per-replica BN, as the reference implementations do) unless options.sync_bn.
Engines with one process per replica (common.harness.replicas.PROCESS_PER_REPLICA) run the worker in
every process; local rank 0 (of each host) writes the run's files. A backend without a
data-parallel path raises BackendUnavailable for devices > 1.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from common.spec import ModelSpec

# on_step(iteration, loss_d, loss_g, seconds): seconds is the step's device-synchronised time,
# excluding time spent fetching from `batches` (common.harness.timing.FetchTimer): that is harness time.
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

    def __init__(self, spec: ModelSpec, options: BackendOptions = BackendOptions()):
        self.spec, self.options = spec, options
        if (options.devices > 1 or options.nodes > 1) and not self.data_parallel:
            raise BackendUnavailable(f"--devices {options.devices}: the {self.name} backend: "
                                     f"{self.no_data_parallel}; run it with --devices 1")
        if options.sync_bn and not self.sync_bn_supported:
            raise BackendUnavailable(f"--sync-bn: the {self.name} backend has no synchronised BN; "
                                     "leave --sync-bn off (per-replica BN)")

    @classmethod
    @abc.abstractmethod
    def probe(cls) -> dict:
        """Framework version and the devices it sees, e.g. {"version": "2.13.0", "devices": ["cpu"]}."""

    def parallel_info(self) -> dict:
        """{"devices": devices per node, "replicas": total replicas, "engine": what trains them}."""
        return {"devices": 1, "replicas": 1, "engine": "single device"}

    # ----- device -----
    @abc.abstractmethod
    def device_info(self) -> dict:
        """{"device": "cpu" | "gpu", "name": human-readable model, "threads": {...}}."""

    @abc.abstractmethod
    def synchronize(self) -> None:
        """Block until all queued device work is done (a timer may stop only after this)."""

    @abc.abstractmethod
    def peak_memory(self) -> dict:
        """{"bytes": int, "kind": "device-allocator" | "rss"}: the framework allocator's peak on
        a GPU, else the process's peak resident set (each backend runs in its own process)."""

    # ----- weights -----
    @abc.abstractmethod
    def load_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Load canonical weights (common/canonical.py), including BN running statistics."""

    @abc.abstractmethod
    def export_weights(self) -> dict[str, np.ndarray]:
        """Canonical weights: float32, PyTorch layout, exactly the spec's keys."""

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
    @abc.abstractmethod
    def generate(self, z: np.ndarray, train: bool = False) -> np.ndarray:
        """G(z) as NCHW float32. train=False normalises with BN running statistics (inference);
        train=True with the batch's own statistics. Neither updates running statistics."""

    @abc.abstractmethod
    def discriminate(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        """D(x) logits, shape (N,). BN modes as in generate(); no running-statistic update."""

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
