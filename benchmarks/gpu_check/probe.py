"""What the GPU check records before it runs anything: the GPU, driver and CUDA as nvidia-smi
reports them, and per backend its framework's version, CUDA/cuDNN build and the devices it sees;
plus the power sampler and the joules per image of a grid cell, over its timed steps.

    python -m benchmarks.gpu_probe NAME     # one backend, one JSON line (its own process)

Each backend is probed in its own process: a framework's import can be slow or crash, and two
frameworks in one process can fight over the GPU.
"""
from __future__ import annotations

import datetime as dt
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
from common.results import schema  # noqa: E402

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
    if gpu_reason is None:
        # The device as a run selects it, so the build record shows the switches spec runs use
        # (PyTorch's TF32 flags are the framework's defaults until then: cuDNN's on).
        runtime.select_device("gpu")
    return {"backend": name, "status": "ok", **backend.probe(),
            "build": build() if build else {}, "sees_gpu": gpu_reason is None, "gpu_reason": gpu_reason}


class PowerSampler:
    """nvidia-smi's power.draw of GPU `index` about every `interval` seconds, read in a thread:
    `with PowerSampler() as p: ...` then p.samples [(monotonic seconds, watts)]. A no-op without
    nvidia-smi (the CPU smoke run): samples stay empty.

    Each sample's time is nvidia-smi's own timestamp of its query, not when its line was read: the
    samples are cut to a cell's timed steps (cell_power), and a piped program's output may arrive
    in bursts. stdbuf asks for a line at a time; the rest of the output is read after the stop."""

    def __init__(self, index: int = 0, interval: float = 0.1):
        self.index, self.interval, self.samples = index, interval, []
        self._proc = self._thread = None

    def __enter__(self):
        if shutil.which("nvidia-smi"):
            # One long-lived `nvidia-smi -lms`: a process per sample would cost more than 100 ms.
            cmd = [*(["stdbuf", "-oL"] if shutil.which("stdbuf") else []), "nvidia-smi", f"--id={self.index}",
                   "--query-gpu=timestamp,power.draw", "--format=csv,noheader,nounits",
                   f"-lms={int(self.interval * 1000)}"]
            try:
                self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            except OSError:
                return self
            self._thread = threading.Thread(target=self._read, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._proc:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._thread:
            self._thread.join(timeout=5)

    def _read(self):
        wall_minus_monotonic = time.time() - time.monotonic()
        for line in self._proc.stdout:  # to the end: what was written before the stop counts
            sample = power_sample(line, wall_minus_monotonic)
            if sample:
                self.samples.append(sample)


def power_sample(line: str, wall_minus_monotonic: float) -> tuple[float, float] | None:
    """(monotonic seconds, watts) from a line of `nvidia-smi --query-gpu=timestamp,power.draw
    --format=csv,noheader,nounits` ('2026/12/02 09:40:01.123, 312.45'; its timestamp is local
    time); None for '[N/A]' (GPUs that do not report power) or any other line."""
    try:
        stamp, watts = (part.strip() for part in line.split(","))
        wall = dt.datetime.strptime(stamp, "%Y/%m/%d %H:%M:%S.%f").timestamp()
        return wall - wall_minus_monotonic, float(watts)
    except ValueError:
        return None


# nvidia-smi's power.draw is, on Ampere and newer GPUs, the average of the last second (NVML's
# nvmlDeviceGetPowerUsage), and on A100 and H100 that average itself samples about a quarter of
# the time (Yang et al., SC24, "Accurate and Convenient Energy Measurements for GPUs"): a reading
# says little about a window much shorter than a few seconds. So the samples of the first second
# of the timed steps are left out (they average in the warm-up), and a window with less than
# POWER_MIN_SECONDS left gives no joules per image, with why.
POWER_LAG_SECONDS = 1.0
POWER_MIN_SECONDS = 2.0


def window_watts(samples: list[tuple[float, float]], window: list[float] | None) -> tuple[list[float], str]:
    """The watts sampled while the timed steps ran (window: [start, end] on time.monotonic, the
    run's summary.timed_window_monotonic), after the first POWER_LAG_SECONDS; or [] and why."""
    if not samples:
        return [], "no power samples (no nvidia-smi, or no reading)"
    if not window:
        return [], "no timed window in the run's results"
    start, end = window[0] + POWER_LAG_SECONDS, window[1]
    if end - start < POWER_MIN_SECONDS:
        return [], (f"the timed steps ran {window[1] - window[0]:.1f} s, under the "
                    f"{POWER_LAG_SECONDS + POWER_MIN_SECONDS:.0f} s a power reading needs")
    watts = [w for t, w in samples if start <= t <= end]
    return watts, "" if watts else "no power sample inside the timed steps"


def joules_per_image(watts: list[float], img_per_s: float | None) -> float | None:
    """Steady-state energy per image: the median of the watts sampled while the timed steps ran
    (window_watts) divided by their throughput. None without either."""
    if not watts or not img_per_s:
        return None
    ordered = sorted(watts)
    return ordered[len(ordered) // 2] / img_per_s


def timed_window(work: Path, backend: str) -> list[float] | None:
    """When a grid cell's timed steps ran (time.monotonic), from its one run's results.json
    under the cell's --work folder."""
    for path in sorted(work.glob("*/results.json")):
        try:
            result = schema.load_results(path)["backends"][backend]
        except (OSError, ValueError, KeyError):
            continue
        return (result.get("summary") or {}).get("timed_window_monotonic")
    return None


def cell_power(samples: list[tuple[float, float]], work: Path, backend: str, img_per_s: float | None) -> dict:
    """A grid cell's power columns: joules per image and mean watts over its timed steps, the
    number of samples behind them, and why there are none where there are none."""
    watts, why = window_watts(samples, timed_window(work, backend))
    jpi = joules_per_image(watts, img_per_s)
    return {"J/image": round(jpi, 5) if jpi else None,
            "mean W": round(sum(watts) / len(watts), 1) if watts else None,
            "power samples": len(watts), "power": why}


if __name__ == "__main__":
    print(json.dumps(_probe_here(sys.argv[1]), default=str))
