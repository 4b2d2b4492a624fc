"""MXNet's process and device (the functions of backends/base.py's contract).

- Threads: MXNet's engine reads OMP_NUM_THREADS (and its own MXNET_* variables) once, at import
  (run_all.py and benchmarks.bare set it before); set_threads can change nothing afterwards, and
  thread_info() records what was in effect then.
- synchronize waits on the CPU too: MXNet's engine is asynchronous everywhere.
- peak_memory on a GPU: MXNet exposes no allocator peak, only the device's free/total memory; the
  largest used (total - free, which includes the CUDA context and other processes) of the
  samples taken (sample_memory, called at the loss fetches, and peak_memory itself) is reported,
  labelled as such.
- Full float32 on GPUs: NVIDIA_TF32_OVERRIDE, set before the import (backends/mxnet/__init__.py).
"""
from __future__ import annotations

import os
import warnings

import mxnet as mx

from backends.base import wants_gpu

# The thread settings MXNet's engine read at import (backends/mxnet/__init__.py imported mxnet
# just before this module); unset OMP_NUM_THREADS means MXNet's own choice.
THREAD_ENV_AT_IMPORT = {name: os.environ.get(name)
                        for name in ("OMP_NUM_THREADS", "MXNET_CPU_WORKER_NTHREADS",
                                     "MXNET_OMP_MAX_THREADS")}
# oneDNN (MKLDNN) kernels change the CPU arithmetic (and need models.py's one-channel workaround).
ONEDNN = (mx.runtime.Features().is_enabled("MKLDNN")
          and os.environ.get("MXNET_MKLDNN_ENABLED", "1") != "0")

# mxnet's C++ log switches, read when first used (at bind or at the first fallback), so they can
# follow options.verbose: the "Subgraph backend MKLDNN is activated" line at every bind, and the
# storage-fallback notices printed when oneDNN is disabled.
_QUIET_LOGS = {"MXNET_SUBGRAPH_VERBOSE": "0", "MXNET_STORAGE_FALLBACK_LOG_VERBOSE": "0"}

_used_peak: dict[int, int] = {}  # GPU id -> the largest used memory sampled


def version() -> str:
    return mx.__version__


def gpu_count() -> int:
    try:
        return mx.context.num_gpus()
    except mx.base.MXNetError:  # a CUDA build on a machine without a usable driver
        return 0


def gpu_unavailable_reason() -> str | None:
    if gpu_count() > 0:
        return None
    built = "" if mx.runtime.Features().is_enabled("CUDA") else \
        ", a build without CUDA (a CUDA build is a separate package, e.g. mxnet-cu112)"
    return f"mxnet {mx.__version__} sees no GPU{built}"


def select_device(requested: str) -> mx.Context:
    return mx.gpu(0) if wants_gpu(requested, gpu_unavailable_reason) else mx.cpu()


def is_gpu(device: mx.Context) -> bool:
    return device.device_type == "gpu"


def set_threads(threads: int | None) -> None:
    """Nothing to do: the thread count was fixed at import (the module docstring)."""


def thread_info() -> dict:
    return {k: v for k, v in THREAD_ENV_AT_IMPORT.items() if v is not None}


def quiet(verbose: bool) -> None:
    if verbose:
        return
    for name, value in _QUIET_LOGS.items():
        os.environ.setdefault(name, value)  # an explicit user setting wins
    warnings.filterwarnings("ignore", module=r"mxnet(\.|$)")


def synchronize(device: mx.Context) -> None:
    mx.nd.waitall()


def sample_memory(device: mx.Context) -> None:
    if is_gpu(device):
        free, total = mx.context.gpu_memory_info(device.device_id)
        _used_peak[device.device_id] = max(_used_peak.get(device.device_id, 0), total - free)


def peak_memory(device: mx.Context) -> dict | None:
    if not is_gpu(device):
        return None
    sample_memory(device)
    return {"bytes": int(_used_peak[device.device_id]),
            "kind": "device used, sampled (MXNet has no allocator peak)"}
