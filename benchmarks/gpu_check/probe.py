"""What the GPU check records before it runs anything: the GPU, driver and CUDA as nvidia-smi
reports them, and per backend its framework's version, CUDA/cuDNN build and the devices it sees.

Each backend is probed in its own process, `python -m benchmarks.gpu_check.probe NAME` (internal:
one JSON line), since a framework's import can be slow or crash, and two frameworks in one
process can fight over the GPU.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import backends  # the registry imports no framework

REPO = Path(__file__).resolve().parents[2]
# -h, or anything but one backend name: this line (the check runs this module, not a person)
INTERNAL = ("python -m benchmarks.gpu_check.probe NAME: internal, the GPU check's probe of one backend "
            "(one JSON line); run python -m benchmarks.gpu_check")

SMI_FIELDS = ("name", "driver_version", "memory.total", "power.limit", "clocks.max.sm", "pci.bus_id")


def smi_query(fields, timeout: float = 10.0) -> list[dict] | None:
    """One row per GPU of `nvidia-smi --query-gpu=fields`; None without nvidia-smi or on error."""
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode:
        return None
    return [dict(zip(fields, (v.strip() for v in line.split(","))))
            for line in out.stdout.splitlines() if line.strip()]


def smi_cuda_version() -> str | None:
    """The driver's CUDA version (the banner of plain `nvidia-smi`: 'CUDA Version: 13.0')."""
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for part in out.split("|"):
        if "CUDA Version:" in part:
            return part.split("CUDA Version:")[1].strip().split()[0]
    return None


def gpu_record() -> dict:
    return {"gpus": smi_query(SMI_FIELDS) or [], "driver_cuda": smi_cuda_version()}


def probe_backend(name: str, timeout: float = 180.0) -> dict:
    """The framework's version, build, devices and GPU verdict, from a child process."""
    reason = backends.unavailable_reason(name)
    if reason:
        return {"backend": name, "status": "unavailable", "reason": reason}
    try:
        proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check.probe", name], cwd=REPO,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"backend": name, "status": "failed", "reason": f"probe took over {timeout:.0f} s"}
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"backend": name, "status": "failed", "reason": proc.stderr.strip()[-300:]}


def probe_here(name: str) -> dict:
    """One backend's record, in this process (the child's side of probe_backend)."""
    backend = backends.load(name)
    runtime = backend.runtime
    build = getattr(runtime, "build_info", None)  # optional: CUDA/cuDNN build where it knows
    gpu_reason = runtime.gpu_unavailable_reason()
    if gpu_reason is None:
        # The device as a run selects it, so the build record shows the switches spec runs use
        # (PyTorch's TF32 flags are the framework's defaults until then: cuDNN's on).
        runtime.select_device("gpu")
    return {"backend": name, "status": "ok", **backend.probe(),
            "build": build() if build else {}, "sees_gpu": gpu_reason is None, "gpu_reason": gpu_reason}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in backends.REGISTRY:
        asked = argv in (["-h"], ["--help"])
        print(INTERNAL if asked else f"{INTERNAL}; NAME: one of {', '.join(backends.NAMES)}",
              file=sys.stdout if asked else sys.stderr)
        return 0 if asked else 2
    print(json.dumps(probe_here(argv[0]), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
