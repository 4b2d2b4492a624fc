"""What the GPU check records before it runs anything: the GPU, driver and CUDA as nvidia-smi
reports them, and per backend its framework's version, CUDA/cuDNN build and the devices it sees;
plus the power sampler behind joules per image.

    python -m benchmarks.gpu_probe NAME     # one backend, one JSON line (its own process)

Each backend is probed in its own process: a framework's import can be slow or crash, and two
frameworks in one process can fight over the GPU.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import backends  # noqa: E402  (the registry imports no framework)

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
        proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_probe", name], cwd=REPO,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"backend": name, "status": "failed", "reason": f"probe took over {timeout:.0f} s"}
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"backend": name, "status": "failed", "reason": proc.stderr.strip()[-300:]}


def _probe_here(name: str) -> dict:
    backend = backends.load(name)
    runtime = backend.runtime
    build = getattr(runtime, "build_info", None)  # optional: CUDA/cuDNN build where it knows
    gpu_reason = runtime.gpu_unavailable_reason()
    return {"backend": name, "status": "ok", **backend.probe(),
            "build": build() if build else {}, "sees_gpu": gpu_reason is None, "gpu_reason": gpu_reason}


class PowerSampler:
    """nvidia-smi's power.draw of GPU `index` about every `interval` seconds, in a thread:
    `with PowerSampler() as p: ...` then p.samples [(monotonic seconds, watts)]. A no-op without
    nvidia-smi (the CPU smoke run): samples stay empty."""

    def __init__(self, index: int = 0, interval: float = 0.1):
        self.index, self.interval, self.samples = index, interval, []
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        if shutil.which("nvidia-smi"):
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _loop(self):
        # One long-lived `nvidia-smi -lms`: a process per sample would cost more than 100 ms.
        cmd = ["nvidia-smi", f"--id={self.index}", "--query-gpu=power.draw", "--format=csv,noheader,nounits",
               f"-lms={int(self.interval * 1000)}"]
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        except OSError:
            return
        try:
            for line in proc.stdout:
                if self._stop.is_set():
                    break
                try:
                    self.samples.append((time.monotonic(), float(line.strip())))
                except ValueError:
                    continue  # '[N/A]' on GPUs that do not report power
        finally:
            proc.terminate()
            proc.wait(timeout=5)


def joules_per_image(samples: list[tuple[float, float]], img_per_s: float | None) -> float | None:
    """Steady-state energy per image: the median power of the later half of the samples (start-up,
    import and compile draw less and come first) divided by the measured throughput. None without
    samples or throughput."""
    if not samples or not img_per_s:
        return None
    watts = sorted(w for _, w in samples[len(samples) // 2:])
    return watts[len(watts) // 2] / img_per_s


if __name__ == "__main__":
    print(json.dumps(_probe_here(sys.argv[1]), default=str))
