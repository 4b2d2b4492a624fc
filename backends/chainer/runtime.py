"""Chainer's process and device (the functions of backends/base.py's contract): numpy on the
CPU, CuPy on a GPU.

- Threads are numpy's BLAS pools: they read OMP_NUM_THREADS when numpy is imported (set from
  --threads in the worker's environment, common/harness/child.py); set_threads changes them
  afterwards through threadpoolctl, where it is installed.
- peak_memory on a GPU is CuPy's memory pool: it keeps freed blocks for reuse and returns none
  unless asked, so the bytes it holds now are its high-water mark (the peak of what CuPy
  reserved, at least the peak of live arrays).
- batch_stager on a GPU: the harness's batches staged through pinned buffers and a copy stream
  (backends/staging.py), instead of device.send's synchronous copy from pageable memory."""
from __future__ import annotations

import os

from backends import staging
from backends.base import wants_gpu
from backends.compat import prepare_chainer
from common import replicas

chainer = prepare_chainer()
from chainer.backends import cuda  # noqa: E402


def version() -> str:
    return chainer.__version__


def gpu_unavailable_reason() -> str | None:
    """Why chainer cannot use a GPU here (None if it can)."""
    if not cuda.available:
        error = getattr(cuda, "_resolution_error", None)
        why = ("CuPy is not installed (the gpu-chainer line of docs/gpu.md#a-gpu-workstation, "
               "with the build constraint Chainer needs)" if error is None
               or isinstance(error, ModuleNotFoundError)
               else f"CuPy cannot be used: {type(error).__name__}: {error}")
        return f"chainer cannot use a GPU: {why}"
    try:
        count = cuda.cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - CUDA runtime errors: no driver, no device
        return f"chainer cannot use a GPU: CuPy {cuda.cupy.__version__} sees no CUDA device ({exc})"
    return None if count else f"chainer cannot use a GPU: CuPy {cuda.cupy.__version__} sees no CUDA device"


def build_info() -> dict:
    """CuPy's version and CUDA, and whether Chainer will use cuDNN (CuPy 14 has none: then every
    convolution is CuPy's own im2col + matmul). Optional in the runtime contract; the GPU check
    and results record it."""
    if not cuda.available:
        return {"cupy": None}
    cupy = cuda.cupy
    return {"cupy": cupy.__version__, "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
            "cudnn": cuda.cudnn_enabled and chainer.should_use_cudnn(">=auto"),
            "cudnn_version": cuda.libcudnn.getVersion() if cuda.cudnn_enabled else None}


def select_device(requested: str):
    """numpy, or the GPU of this replica's local rank (common.replicas.local_rank; 0 unless launched)."""
    if not wants_gpu(requested, gpu_unavailable_reason):
        return chainer.get_device("@numpy")
    device = chainer.get_device(f"@cupy:{replicas.local_rank()}")
    device.use()
    chainer.config.autotune = True  # cuDNN algorithm search, like cudnn.benchmark
    return device


def is_gpu(device) -> bool:
    return device.xp is cuda.cupy


def set_threads(threads: int | None) -> None:
    if threads:
        try:
            import threadpoolctl
        except ImportError:
            return
        threadpoolctl.threadpool_limits(threads)


def thread_info() -> dict:
    """numpy's BLAS thread pools as they are in effect (threadpoolctl, when installed), and the
    environment that sets them."""
    info = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
            if k in os.environ}
    try:
        import threadpoolctl
    except ImportError:
        return info
    for pool in threadpoolctl.threadpool_info():
        info[f"{pool['internal_api']}.num_threads"] = pool["num_threads"]
    return info


def quiet(verbose: bool) -> None:
    """Nothing to quiet: chainer's import-time warnings are filtered in backends/compat.py."""


def synchronize(device) -> None:
    if is_gpu(device):
        device.device.synchronize()


def peak_memory(device) -> dict | None:
    if not is_gpu(device):
        return None
    return {"bytes": int(cuda.cupy.get_default_memory_pool().total_bytes()), "kind": "device-allocator"}


class CupyCopies:
    """backends/staging.py's engine on CuPy. The compute stream is CuPy's current stream (the
    null stream unless a caller set another) when the stager is made: Chainer 7.8.1's functions
    name no stream, CuPy launches its kernels on the current stream and binds its cuBLAS and
    cuDNN handles to it at every call. The copy stream is non-blocking: a blocking stream would
    serialise with the legacy null stream and the copy could not overlap a step. Device buffers
    are allocated here (CuPy's pool, on the device in use) once per ring slot and held."""

    def __init__(self):
        import cupyx
        cupy = cuda.cupy
        self.copy_stream = cupy.cuda.Stream(non_blocking=True)
        self.compute_stream = cupy.cuda.get_current_stream()
        self.pinned, self.device = cupyx.empty_pinned, cupy.empty

    def event(self):
        return cuda.cupy.cuda.Event(disable_timing=True)


def batch_stager(device, slots: int = staging.SLOTS):
    """A converter staging batches through pinned buffers and a copy stream on a GPU; None on
    the CPU, where device.send is a no-op and nothing needs staging."""
    return staging.StagingRing(CupyCopies(), slots) if is_gpu(device) else None
