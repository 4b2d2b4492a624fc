"""JAX's process and device (the functions of backends/base.py's contract).

- Threads: XLA:CPU ignores OMP_NUM_THREADS and has no thread-count API; its pool is as large as
  the CPUs the process may run on. set_threads(N) therefore pins the process to N CPUs
  (os.sched_setaffinity) before XLA's runtime starts (the Backend calls it before its first
  array), and thread_info records the mechanism and the CPUs XLA then sees.
- set_host_devices(N): N XLA host devices (--xla_force_host_platform_device_count), the CPU's
  devices of a data-parallel run; also before the runtime starts.
- use_classic_cpu_runtime(): the `onednn` fast path, XLA:CPU's classic runtime, whose
  convolutions are oneDNN's; also before the runtime starts.
- select_device on a GPU sets the default matmul/convolution precision to 'highest': JAX's
  default on Ampere and newer GPUs multiplies float32 in TF32 (10-bit mantissa), which would make
  this backend faster and less exact than the others' full-float32 spec runs. On the CPU the
  default is already full float32. The device chosen is made JAX's default device.
"""
from __future__ import annotations

import logging
import os

import jax

from backends.base import wants_gpu

HOST_DEVICES_FLAG = "--xla_force_host_platform_device_count"
_pinned: dict = {}  # what set_threads did in this process


def version() -> str:
    import flax
    import jaxlib
    import optax
    return f"{jax.__version__} (jaxlib {jaxlib.__version__}, flax {flax.__version__}, optax {optax.__version__})"


def gpu_unavailable_reason() -> str | None:
    errors = _PluginErrors()
    bridge = logging.getLogger("jax._src.xla_bridge")
    bridge.addHandler(errors)
    try:
        if jax.devices("gpu"):
            return None
    except RuntimeError:
        pass
    finally:
        bridge.removeHandler(errors)
    platforms = sorted({d.platform for d in jax.devices()})
    plugins = cuda_plugins()
    if not plugins:
        return f"JAX {jax.__version__} sees no GPU (platforms: {platforms}; the CUDA build is pip install '.[gpu-jax]')"
    # The plugin is there but did not start (no driver, a CUDA or cuDNN it cannot load): JAX only
    # logs why, once, when its backends first start; the reason keeps the last line of that.
    why = f": {errors.messages[-1]}" if errors.messages else " (its error is logged when JAX first starts)"
    return f"JAX {jax.__version__} sees no GPU (platforms: {platforms}; {', '.join(plugins)} did not start{why})"


class _PluginErrors(logging.Handler):
    """The exceptions JAX logs when a PJRT plugin fails to initialise."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.messages.append(str(record.exc_info[1]).strip().splitlines()[-1][:300])


def cuda_plugins() -> list[str]:
    """The installed JAX CUDA plugin distributions, 'name version' (jax-cuda13-plugin ...)."""
    from importlib import metadata
    found = {}
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name.startswith("jax-cuda") and name.endswith("-plugin"):
            found[name] = dist.version
    return [f"{n} {v}" for n, v in sorted(found.items())]


def select_device(requested: str):
    if not wants_gpu(requested, gpu_unavailable_reason):
        device = jax.local_devices(backend="cpu")[0]  # this process's (several hosts: jax.distributed)
    else:
        # Full float32 for spec runs (module docstring); bf16 inputs are unaffected.
        jax.config.update("jax_default_matmul_precision", "highest")
        device = jax.local_devices(backend="gpu")[0]
    jax.config.update("jax_default_device", device)
    return device


def is_gpu(device) -> bool:
    return device.platform == "gpu"


def _add_xla_flag(flag: str, value) -> None:
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(flag + "=")]
    os.environ["XLA_FLAGS"] = " ".join(flags + [f"{flag}={value}"])


CLASSIC_RUNTIME_FLAG = "--xla_cpu_use_thunk_runtime"


def use_classic_cpu_runtime() -> None:
    """XLA:CPU's classic runtime, before JAX's runtime starts (the `onednn` fast path). Measured
    with ONEDNN_VERBOSE=1 (jaxlib 0.6.2, mnist32, bf16): the default thunk runtime calls oneDNN
    only as a GEMM, the classic one rewrites every convolution to oneDNN's (brg_conv_fwd:
    avx512_core_bf16 on this AVX512-BF16 CPU). jaxlib 0.10.2 accepts the flag but ignores it,
    with XLA's warning that it is no longer supported: there the path changes nothing. XLA reads
    XLA_FLAGS once, when its CPU client starts: in a process where JAX has already computed this
    changes nothing, though XLA_FLAGS (and so thread_info) then names the flag; the CLI's worker
    and the grid's cells are fresh processes, and the test runs one."""
    _add_xla_flag(CLASSIC_RUNTIME_FLAG, "false")


def set_host_devices(n: int) -> None:
    """n CPU devices for XLA (data parallel on one host); before JAX's runtime starts."""
    _add_xla_flag(HOST_DEVICES_FLAG, n)


def set_threads(threads: int | None) -> None:
    """Pin the process to `threads` CPUs (None or 0: all it has): the size of XLA's CPU pool."""
    if not threads or not hasattr(os, "sched_setaffinity"):
        return
    allowed = sorted(os.sched_getaffinity(0))
    # More threads than CPUs: XLA's pool cannot exceed the CPUs (recorded as requested vs used).
    os.sched_setaffinity(0, allowed[:threads])
    _pinned.update(requested=threads)


def thread_info() -> dict:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"mechanism": "os.sched_setaffinity before XLA starts (XLA:CPU sizes its pool by the "
                         "CPUs the process may use)" if _pinned else "XLA's default: every CPU",
            "requested": _pinned.get("requested"), "xla_cpu_threads": cpus, "XLA_FLAGS": os.environ.get("XLA_FLAGS", "")}


def quiet(verbose: bool) -> None:
    """JAX's 'no GPU/TPU found, falling back to cpu' warnings and the like."""
    if not verbose:
        for name in ("jax._src.xla_bridge", "absl"):
            logging.getLogger(name).setLevel(logging.ERROR)


def synchronize(device) -> None:
    """Dispatch is asynchronous (on the CPU too): a computation on the device, waited for, runs
    after everything queued before it."""
    jax.block_until_ready(jax.device_put(0.0, device) + 0.0)


def peak_memory(device) -> dict | None:
    stats = device.memory_stats() if is_gpu(device) else None
    if not stats or "peak_bytes_in_use" not in stats:
        return None
    return {"bytes": int(stats["peak_bytes_in_use"]), "kind": "device-allocator"}
