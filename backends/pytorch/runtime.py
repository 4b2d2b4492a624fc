"""PyTorch's process and device (the functions of backends/base.py's contract).

- select_device on CUDA turns TF32 off, so the spec runs in full float32 like the other
  backends, and cudnn.benchmark on.
- set_threads sets torch's intra-op pool (the inter-op pool keeps its default)."""
from __future__ import annotations

import torch

from backends.base import wants_gpu


def version() -> str:
    return torch.__version__


def gpu_unavailable_reason() -> str | None:
    if torch.cuda.is_available():
        return None
    return f"torch sees no CUDA device (torch {torch.__version__} built with CUDA {torch.version.cuda})"


def build_info() -> dict:
    """The CUDA and cuDNN torch was built with, and its TF32 switches as they are now (after
    select_device on a GPU: the spec run's; before it, torch's defaults), for the GPU check's
    record; optional in the runtime contract."""
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    info = {"cuda": torch.version.cuda, "cudnn": cudnn,
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
    return info


def select_device(requested: str) -> torch.device:
    if not wants_gpu(requested, gpu_unavailable_reason):
        return torch.device("cpu")
    torch.backends.cudnn.benchmark = True
    # Full float32 for spec runs: TF32 would make this backend faster and less exact.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return torch.device("cuda", 0)


def is_gpu(device: torch.device) -> bool:
    return device.type == "cuda"


def set_threads(threads: int | None) -> None:
    if threads:  # None or 0: torch's own setting
        torch.set_num_threads(threads)


def thread_info() -> dict:
    return {"torch.get_num_threads": torch.get_num_threads(),
            "torch.get_num_interop_threads": torch.get_num_interop_threads()}


def quiet(verbose: bool) -> None:
    """Nothing to quiet: torch logs nothing unasked."""


def synchronize(device: torch.device) -> None:
    if is_gpu(device):
        torch.cuda.synchronize(device)


def peak_memory(device: torch.device) -> dict | None:
    if not is_gpu(device):
        return None
    return {"bytes": int(torch.cuda.max_memory_allocated(device)), "kind": "device-allocator"}
