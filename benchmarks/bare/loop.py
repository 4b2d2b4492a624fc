"""What every bare loop shares: its fixed batch, its starting weights and its timed loop."""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from backends.base import peak_memory_or_rss
from common import data
from common.data import noise
from common import canonical
from common.spec import ModelSpec


def fixed_batch(spec: ModelSpec, batch: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(real, z) as numpy: the harness's synthetic images and its iteration-0 noise."""
    real = data.load_dataset("synthetic", spec.preset, n_synthetic=batch, seed=seed).images
    return real, noise.iteration_noise(seed, 0, batch, spec.preset.nz)


def starting_weights(spec: ModelSpec, init_weights: dict | None) -> dict[str, np.ndarray]:
    """The given canonical weights, else the shared initialisation of seed 0 (every framework
    starts from the same parameters either way)."""
    if init_weights is None:
        return canonical.draw_initial_weights(spec, 0)
    canonical.validate(init_weights, spec)
    return init_weights


def check_sizes(batch: int, iters: int) -> None:
    if batch <= 0 or iters <= 0:
        raise ValueError(f"batch and iters must be positive, got batch={batch}, iters={iters}")


def timed_steps(step: Callable[[], tuple], finish: Callable[[tuple], tuple[float, float]],
                iters: int) -> dict:
    """Runs step() iters times. finish(step's losses) fetches them as floats after a device
    sync, inside the timed window: without it an asynchronous framework's time would be the
    time to queue the work."""
    seconds, losses = [], []
    for _ in range(iters):
        t0 = time.perf_counter()
        loss_d, loss_g = finish(step())
        seconds.append(time.perf_counter() - t0)
        losses.append([loss_d, loss_g])
    return {"step_seconds": seconds, "losses": losses}


def synced_floats(runtime, device) -> Callable[[tuple], list[float]]:
    """A `finish` for timed_steps: the backend's runtime.synchronize, then the losses as floats."""
    def finish(losses):
        runtime.synchronize(device)
        return [float(loss) for loss in losses]
    return finish


def report(timed: dict, runtime, device, threads: dict | None = None) -> dict:
    """timed_steps' result with the peak memory, framework version and threads (the backend's
    runtime.thread_info() unless given), as the backend's own run reports them."""
    return dict(timed, peak_memory=peak_memory_or_rss(runtime.peak_memory(device)),
                framework_version=runtime.version(),
                threads=runtime.thread_info() if threads is None else threads)


if __name__ == "__main__":
    import benchmarks
    raise SystemExit(benchmarks.internal_entry("benchmarks.bare.loop", "what every bare reference loop shares", "benchmarks.bare -h"))
