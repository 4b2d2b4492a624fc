"""MXNet data parallel: the Module API over a list of contexts with a kvstore, in one process.

- Every module is bound to N contexts (mx.cpu(i) or mx.gpu(i)); Module's executor group splits
  each batch into N contiguous slices, one per context (the slices of common.replicas), runs
  them with per-context BN, and merges outputs back in order. D's input gradient, merged, is
  split the same way for G's backward.
- The kvstore ('local' on CPUs, 'device' on GPUs) sums each gradient over the contexts and hands
  the sum back to every context (update_on_kvstore off); every context then runs the same Adam
  step on the same sum, times rescale_grad = 1/N: the mean of the slices' batch-mean
  gradients, i.e. the global batch's. Update on the kvstore is off because the kvstore would
  keep its own copy of the weights, and canonical weights loaded after binding would not reach it.
- Each context keeps its own BN running statistics (from its own slice); export_weights gives
  context 0's.
- Losses: each context's batch-mean loss, averaged by an NDArray mean over the contexts.
- Several hosts: kvstore 'dist_sync' (the pip wheel has no tools/launch.py: rank 0 would start
  the scheduler and server roles with DMLC_*); not wired in this version, run_all.py refuses
  --nodes with that reason (docs/data-parallel.md).
"""
from __future__ import annotations

import contextlib
import os

import mxnet as mx

from backends.base import BackendOptions, BackendUnavailable
from backends.mxnet import runtime


class Replicas:
    """The N contexts of this process's modules (models.build binds them; Module splits every
    batch among them)."""

    def __init__(self, options: BackendOptions, device: mx.Context):
        n = options.devices
        if device.device_type == "gpu":
            if runtime.gpu_count() < n:
                raise BackendUnavailable(f"--devices {n}: mxnet sees only {runtime.gpu_count()} GPU(s)")
            self.contexts = [mx.gpu(i) for i in range(n)]
        else:
            self.contexts = [mx.cpu(i) for i in range(n)]  # logical CPU contexts sharing the cores

    def rows(self, batch_size: int) -> slice:
        return slice(0, batch_size)  # this process trains on the whole batch (split by Module)

    def mean_losses(self, loss_d, loss_g):
        return loss_d, loss_g  # already the contexts' mean (training.discriminator_backward)

    def info(self) -> dict:
        ctxs = self.contexts
        return {"devices": len(ctxs), "replicas": len(ctxs), "nodes": 1,
                "engine": f"mxnet Module, kvstore {kvstore(ctxs)}", "batchnorm": "per replica",
                "contexts": [str(c) for c in ctxs]}


def kvstore(ctxs: list[mx.Context]) -> str | None:
    if len(ctxs) == 1:
        return None
    return "device" if ctxs[0].device_type == "gpu" else "local"


@contextlib.contextmanager
def _env(name: str, value: str):
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            del os.environ[name]
        else:
            os.environ[name] = old


def init_optimizer(module: mx.mod.Module, ctxs: list[mx.Context], params: dict) -> None:
    """Module.init_optimizer with the contexts' kvstore, updates on the contexts (see above)."""
    params = dict(params, rescale_grad=params["rescale_grad"] / len(ctxs))
    with _env("MXNET_UPDATE_ON_KVSTORE", "0"):  # read by Module.init_optimizer, see above
        module.init_optimizer(kvstore=kvstore(ctxs), optimizer="adam", optimizer_params=params)
