"""What machine and software produced a result: provenance recorded beside every number."""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Distributions whose versions matter for a result (read from metadata: nothing is imported).
PACKAGES = ("numpy", "pandas", "matplotlib", "torch", "tensorflow", "tensorflow-cpu", "keras",
            "mxnet", "chainer", "cupy", "jax", "jaxlib", "flax", "optax", "setuptools", "mpi4py",
            "mpich")

# The environment variables recorded with a result: an allow-list of exact names, each one
# because it changes what is measured. Never a prefix match: TF_ is also Terraform's prefix
# (TF_TOKEN_app_terraform_io holds an API token), and users publish results.json.
MEASURED_ENV = {
    # thread counts: how many cores a framework's kernels use (throughput scales with them)
    "OMP_NUM_THREADS": "OpenMP threads (PyTorch, MXNet, oneDNN, OpenBLAS builds with OpenMP)",
    "MKL_NUM_THREADS": "Intel MKL threads (numpy/chainer and MKL builds of the frameworks)",
    "OPENBLAS_NUM_THREADS": "OpenBLAS threads (numpy, Chainer's CPU matmuls)",
    "KMP_AFFINITY": "Intel OpenMP thread pinning (changes CPU throughput)",
    "KMP_BLOCKTIME": "Intel OpenMP spin time after a parallel region (changes CPU throughput)",
    "MXNET_ENGINE_TYPE": "MXNet's scheduler (NaiveEngine runs ops serially)",
    "MXNET_CPU_WORKER_NTHREADS": "MXNet's CPU worker threads",
    "MXNET_OMP_MAX_THREADS": "MXNet's OpenMP thread cap",
    "TF_NUM_INTEROP_THREADS": "TensorFlow's inter-op thread pool",
    "TF_NUM_INTRAOP_THREADS": "TensorFlow's intra-op thread pool",
    # memory: glibc's allocator (every backend's process gets common/harness/child.py ALLOCATOR_ENV)
    "MALLOC_MMAP_THRESHOLD_": "glibc: allocations above it are mmapped, and unmapped when freed (page faults per step)",
    "MALLOC_TRIM_THRESHOLD_": "glibc: free heap above it is returned to the OS (page faults per step)",
    "MALLOC_TOP_PAD_": "glibc: extra heap kept on each growth (page faults per step)",
    "MALLOC_ARENA_MAX": "glibc: malloc arenas for threads (memory and contention)",
    # math switches: which kernels run and at what precision (changes losses and speed)
    "TF_ENABLE_ONEDNN_OPTS": "TensorFlow's oneDNN kernels on/off (different rounding, speed)",
    "MXNET_MKLDNN_ENABLED": "MXNet's oneDNN (MKL-DNN) kernels on/off",
    "MXNET_CUDNN_AUTOTUNE_DEFAULT": "MXNet's cuDNN algorithm search (speed, determinism)",
    "DNNL_DEFAULT_FPMATH_MODE": "oneDNN's implicit down-conversion (bf16/tf32 math on CPU)",
    "ONEDNN_DEFAULT_FPMATH_MODE": "the same switch under oneDNN's newer name",
    "NVIDIA_TF32_OVERRIDE": "TF32 matmuls on Ampere+ GPUs on/off (precision and speed)",
    "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE": "PyTorch's TF32 cuBLAS override",
    "TF_DETERMINISTIC_OPS": "TensorFlow's deterministic kernels (slower, reproducible)",
    "TF_CUDNN_DETERMINISTIC": "TensorFlow's deterministic cuDNN algorithms",
    "CUBLAS_WORKSPACE_CONFIG": "cuBLAS workspace, required for deterministic PyTorch on GPU",
    "XLA_FLAGS": "XLA compiler flags (JAX/TensorFlow: fusion, autotuning, device count)",
    "TF_XLA_FLAGS": "TensorFlow's XLA auto-clustering (jit on/off)",
    "XLA_PYTHON_CLIENT_PREALLOCATE": "JAX's GPU memory preallocation (peak memory reported)",
    "XLA_PYTHON_CLIENT_MEM_FRACTION": "JAX's GPU memory fraction (peak memory reported)",
    "JAX_PLATFORMS": "which JAX platform runs (cpu/cuda)",
    "JAX_ENABLE_X64": "JAX's default float width",
    "JAX_DEFAULT_MATMUL_PRECISION": "JAX's matmul/conv precision (TF32-like on Ampere+ GPUs)",
    "CHAINER_TYPE_CHECK": "Chainer's per-call type checks (CPU time per step)",
    "CHAINER_DTYPE": "Chainer's default float dtype",
    "CUPY_ACCELERATORS": "CuPy's CUB/cuTENSOR reductions (GPU speed)",
    "CUPY_TF32": "TF32 in CuPy's float32 matmuls (Chainer's convolutions without cuDNN)",
    # device visibility: which devices a framework sees
    "CUDA_VISIBLE_DEVICES": "which GPUs are visible (and so which one runs)",
    "CUDA_DEVICE_ORDER": "how GPU indices map to devices",
    # framework log levels: what the stderr logs hold (and import-time work)
    "TF_CPP_MIN_LOG_LEVEL": "TensorFlow's C++ log level",
    "TF_CPP_MAX_VLOG_LEVEL": "TensorFlow's verbose logging (costs time when on)",
    "MXNET_SUBGRAPH_VERBOSE": "MXNet's subgraph log",
    "KERAS_BACKEND": "which Keras backend runs the TensorFlow backend",
}
# A name holding any of these is dropped even if allow-listed: nothing secret is ever written.
SECRET_MARKERS = ("TOKEN", "SECRET", "PASSWORD", "KEY", "CREDENTIAL")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_models() -> list[str]:
    """NVIDIA GPUs as nvidia-smi reports them (no framework import); [] when there is none."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def git_state() -> dict:
    def git(*args):
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                              timeout=10)
    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    if commit.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def packages_hash() -> str:
    """sha256 of every installed distribution as sorted 'name==version' lines: two environments
    with the same hash hold the same packages."""
    lines = sorted({f"{(d.metadata['Name'] or '?').lower()}=={d.version}"
                    for d in importlib.metadata.distributions()})
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def environment() -> dict:
    """The Python environment this process runs in, as a result row records it: interpreter,
    Python version, the versions that matter (PACKAGES) and the hash of the full package list."""
    return {"interpreter": sys.executable, "python": platform.python_version(),
            "packages": package_versions(), "packages_hash": packages_hash()}


def load_sample() -> dict:
    """How busy the machine is now: the 1-minute load average and, where the kernel reports it
    (/proc/stat's 8th cpu column, on Linux), the CPU ticks stolen by a hypervisor."""
    sample = {"load1": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
        ticks = [int(x) for x in fields[1:]]
        if fields[0] == "cpu" and len(ticks) >= 8:
            sample.update(steal_ticks=ticks[7], total_ticks=sum(ticks[:8]))
    except (OSError, ValueError, IndexError):
        pass
    return sample


def machine_load(before: dict, after: dict) -> dict:
    """The load of a stretch of work from samples at its start and end: 1-minute load average
    before and after (the work itself adds up to its thread count to the value after) and the
    fraction of CPU time stolen in between (None where the kernel does not say)."""
    load = {"load1_before": before.get("load1"), "load1_after": after.get("load1")}
    if "steal_ticks" in before and "steal_ticks" in after:
        total = after["total_ticks"] - before["total_ticks"]
        load["cpu_steal_fraction"] = (after["steal_ticks"] - before["steal_ticks"]) / total if total > 0 else 0.0
    return load


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    return any(marker in upper for marker in SECRET_MARKERS)


def measured_env(environ) -> dict[str, str]:
    """The allow-listed variables that are set, minus any whose name looks secret."""
    return {k: environ[k] for k in sorted(MEASURED_ENV) if k in environ and not is_secret_name(k)}


def provenance() -> dict:
    return {
        "git": git_state(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpus": gpu_models(),
        "packages": package_versions(),
        "env": measured_env(os.environ),
    }


if __name__ == "__main__":  # `python -m common.sysinfo`: how another interpreter describes itself
    if sys.argv[1:] in (["-h"], ["--help"]):
        print("python -m common.sysinfo is internal (this interpreter's environment as JSON, for "
              "the harness); run python -m tools.envs list to see the environments")
        sys.exit(0)
    if sys.argv[1:]:
        print("python -m common.sysinfo is internal and takes no arguments; run python -m "
              "tools.envs list to see the environments", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(environment()))
