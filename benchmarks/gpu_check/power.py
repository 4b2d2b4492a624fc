"""The GPU's power while a grid cell runs: nvidia-smi's power.draw sampled in a thread, cut to
the cell's timed steps, and the joules per image of that window."""
from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import threading
import time
from pathlib import Path

from common.results import schema


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
    import benchmarks
    raise SystemExit(benchmarks.internal_entry("benchmarks.gpu_check.power", "the GPU check's power sampling", "benchmarks.gpu_check -h"))
