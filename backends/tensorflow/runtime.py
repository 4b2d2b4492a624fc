"""TensorFlow's process and device (the functions of backends/base.py's contract).

- select_device on a GPU turns TF32 off (TF uses it on Ampere+ by default) and lets memory grow
  as needed; on the CPU it hides the GPUs where TF's runtime has not started yet.
- set_threads sets both TF thread pools (intra-op: threads per op; inter-op: ops at once); it
  must come before TF's runtime starts, which it does in the worker's fresh process.
- quiet lowers TF's and absl's Python-level logging; TF_CPP_MIN_LOG_LEVEL, the C++ side, is set
  in the worker's environment before TF starts (common/harness/child.py)."""
from __future__ import annotations

import contextlib
import logging

import keras
import tensorflow as tf

from backends.base import BackendUnavailable, wants_gpu


def version() -> str:
    return f"{tf.__version__} (keras {keras.__version__})"


def gpu_unavailable_reason() -> str | None:
    if tf.config.list_physical_devices("GPU"):
        return None
    return f"TensorFlow {tf.__version__} sees no GPU (built with CUDA: {tf.test.is_built_with_cuda()})"


def select_device(requested: str) -> str:
    gpus = tf.config.list_physical_devices("GPU")
    if not wants_gpu(requested, gpu_unavailable_reason):
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


def is_gpu(device: str) -> bool:
    return device.startswith("/GPU")


def set_threads(threads: int | None) -> None:
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


def thread_info() -> dict:
    pools = tf.config.threading
    # 0 means TF's default: as many as the machine has cores.
    return {"intra_op": pools.get_intra_op_parallelism_threads(),
            "inter_op": pools.get_inter_op_parallelism_threads()}


def quiet(verbose: bool) -> None:
    if verbose:
        return
    tf.get_logger().setLevel(logging.ERROR)
    with contextlib.suppress(ImportError):
        from absl import logging as absl_logging
        absl_logging.set_verbosity(absl_logging.ERROR)


def synchronize(device: str) -> None:
    if is_gpu(device):
        tf.test.experimental.sync_devices()


def peak_memory(device: str) -> dict | None:
    if not is_gpu(device):
        return None
    return {"bytes": int(tf.config.experimental.get_memory_info("GPU:0")["peak"]),
            "kind": "device-allocator"}
