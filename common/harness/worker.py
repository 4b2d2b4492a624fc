"""One backend's run in its own process: `python -m common.harness.worker CONFIG.json`.

The parent (run_all.py) writes the config and reads back `result.json`; whatever happens here
(an exception, divergence, Ctrl-C) ends with a result file that says so, and the loss CSV keeps
every finished iteration. A crash that kills the interpreter leaves no result file: the parent
records that from the exit status and the stderr tail.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path

import numpy as np

import backends
from backends.base import BackendOptions, BackendUnavailable
from common import atomic, data, sysinfo
from common import replicas
from common.harness import checkpoint, interrupts, launch
from common.data import noise
from common import canonical
from common.errors import DataError
from common.spec import model_spec
from common.harness.quality import time_to_target
from common.harness.steplog import Diverged, StepLog, TargetReached, loss_tail

# Tests only: make one backend fail on purpose, "<backend>:<kind>@<iteration>[/<rank>]", kind one
# of FAULTS (several backends: comma-separated); with /<rank>, only that replica of a
# multi-process run fails. The parent's handling of each is what tests/e2e/test_faults.py and
# tests/e2e/test_parallel.py check.
FAULT_ENV = "DCGAN_BENCH_TEST_FAULT"
FAULTS = ("raise", "oom", "nan", "segfault", "kill", "hang", "interrupt")

GRID_COUNT = 64  # the sample grid: 8 x 8 images, the first of the run's fixed z
INIT_CHECK_COUNT = 16  # G(z) and D(x) at the initial weights: the report's forward-parity check


def run(config: dict, stops: interrupts.Interrupts | None = None) -> dict:
    """Train as config says; stops (the process's signal handling) is told when training is
    over, so that no later signal interrupts the summary."""
    stops = stops or interrupts.Interrupts(raising=True)
    out = Path(config["out_dir"])
    spec = model_spec(config["preset"])
    result = {"backend": config["backend"], "status": "failed", "reason": None}
    log, load_before = None, {}
    try:
        ds = data.load_dataset(config["dataset"]["name"], spec.preset,
                               data_dir=config["dataset"].get("data_dir"),
                               seed=config.get("data_seed", config["seed"]),
                               decoded=config["dataset"].get("decoded"))
        plan = noise.BatchPlan(len(ds.images), config["batch_size"], config["seed"])
        t0 = time.perf_counter()
        Backend = backends.load(config["backend"])
        backend = Backend(spec, BackendOptions(**config["options"]))
        if config.get("init_weights"):
            backend.load_weights(canonical.load(config["init_weights"], spec)[0])
        result["setup_seconds"] = time.perf_counter() - t0
        result["device"] = backend.device_info()
        result["parallel"] = backend.parallel_info()
        result["conventions"] = {"adam": backend.adam_convention,
                                 "running_var_unbiased": backend.running_var_unbiased}
        _save_init_outputs(backend, spec, config, ds.images, out)

        start, stop = 0, config["iters"]
        harness = _resume(backend, config, out, result) if config.get("resume") else {}
        start = result.get("resumed_from", 0)
        probe, every = _quality_probe(backend, spec, config, result, harness.get("train_seconds", 0.0))
        if probe and start == 0:
            probe(0, 0.0)  # the time-to-quality curve starts at the initial weights
        target = (config.get("quality") or {}).get("target_fd")
        log = StepLog(config["backend"], out / "losses.csv", start, stop, config["batch_size"],
                      progress=not config.get("quiet"), probe=probe, probe_every=every,
                      target_fd=target)
        load_before = sysinfo.load_sample()  # how busy the machine was: the report warns
        t0 = time.perf_counter()
        on_step = _with_injected_fault(config["backend"], log)
        # With checkpoints, train() runs in segments that end at them: between two calls the
        # backend is synchronised and its state is that of the iteration (losses may be fetched
        # every K steps, so inside on_step the backend can be ahead of the step it reports).
        every_n, a = config.get("checkpoint_every") or stop, start
        while a < stop:
            b = min(stop, (a // every_n + 1) * every_n)
            backend.train(noise.iterate_batches(ds.images, plan, spec.preset.nz, a, b), a, on_step)
            backend.synchronize()
            if b < stop:
                with log.paused():  # harness work: neither step time nor loop overhead
                    _save_checkpoint(backend, config, out, b, result, harness, log)
            a = b
        stops.shutdown()
        result["wall_seconds"] = time.perf_counter() - t0
        result["status"] = "ok"
    except TargetReached:  # --target-fd: training is done, as if the iterations had run out
        stops.shutdown()
        result["wall_seconds"] = time.perf_counter() - t0
        result["status"] = "ok"
    except Diverged as exc:
        stops.shutdown()
        result.update(status="diverged", reason=str(exc), diverged_at=exc.iteration)
    except KeyboardInterrupt:
        stops.shutdown()
        result.update(status="interrupted", reason=_interrupt_reason(stops, log))
    except (BackendUnavailable, DataError) as exc:
        result.update(status="failed", reason=str(exc))
    except MemoryError as exc:
        result.update(status="oom", reason=f"out of memory: {exc}", traceback=traceback.format_exc(limit=20))
    except Exception as exc:  # noqa: BLE001 - any backend error is recorded, never re-raised
        # Frameworks report device OOM with their own exception types (torch.OutOfMemoryError,
        # TF ResourceExhaustedError, CuPy OutOfMemoryError, MXNet's MXNetError text).
        oom = "OutOfMemory" in type(exc).__name__ or "ResourceExhausted" in type(exc).__name__ \
            or "out of memory" in str(exc).lower()
        result.update(status="oom" if oom else "failed", reason=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc(limit=20))
    finally:
        stops.shutdown()  # whatever ended training, a signal from here on is only counted
        interrupts.test_signal("summary")
        if log is not None:
            log.close()
            result["machine_load"] = sysinfo.machine_load(load_before, sysinfo.load_sample())
            result["loss_tail"] = loss_tail(out / "losses.csv")
            # The model's iterations (a resumed run's step timings cover this process only).
            result["iterations_done"] = log.next_iteration
            result["summary"] = log.summary()
            result["summary"]["quality_probe_seconds"] = log.probe_seconds
            if log.target_fd is not None:
                result["time_to_target"] = time_to_target(result.get("quality_curve", []),
                                                          log.target_fd)
            if log.last:
                result["final_losses"] = dict(zip(("iteration", "loss_d", "loss_g"), log.last))

    if result["status"] in ("ok", "diverged"):
        try:
            _write_artifacts(backend, spec, config, out, result)
        except Exception as exc:  # noqa: BLE001
            result.update(status="failed", reason=f"writing outputs: {type(exc).__name__}: {exc}")
    return result


def _interrupt_reason(stops, log) -> str:
    how = f"stopped by {stops.name()}" if stops.count else "stopped by an interrupt"
    if log is None:
        return how + " before training started"
    return f"{how} after {log.next_iteration} of {log.stop} iterations"


def _with_injected_fault(name: str, on_step):
    """on_step, or (tests only, FAULT_ENV) on_step that fails the chosen way at one iteration."""
    faults = [f for f in os.environ.get(FAULT_ENV, "").split(",") if f.startswith(name + ":")]
    target, _, rest = (faults or [""])[0].partition(":")
    kind, _, at = rest.partition("@")
    at, _, rank = at.partition("/")
    if target != name or kind not in FAULTS or (rank and int(rank) != replicas.launcher_rank()):
        return on_step
    at = int(at or 0)

    def faulty(iteration, loss_d, loss_g, seconds):
        if iteration == at:
            print(f"injected fault: {kind} at iteration {at}", file=sys.stderr, flush=True)
            if kind == "raise":
                raise RuntimeError("injected fault")
            if kind == "oom":
                raise MemoryError("injected: simulated allocation failure")
            if kind == "nan":
                loss_d = float("nan")
            if kind == "segfault":
                os.kill(os.getpid(), signal.SIGSEGV)
            if kind == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if kind == "interrupt":  # as a Ctrl-C to this process alone
                os.kill(os.getpid(), signal.SIGINT)
            if kind == "hang":
                time.sleep(3600)
        on_step(iteration, loss_d, loss_g, seconds)
    return faulty


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic.atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def _save_init_outputs(backend, spec, config, images, out: Path) -> None:
    """G and D outputs at the initial weights, both BN modes, on inputs every backend shares:
    with --shared-init the report compares them with PyTorch's (forward parity of this run)."""
    z = noise.fixed_noise(config["seed"], INIT_CHECK_COUNT, spec.preset.nz)
    real = images[:INIT_CHECK_COUNT]
    arrays = {f"{net}_{mode}": fn(x, train=(mode == "train"))
              for net, fn, x in (("G", backend.generate, z), ("D", backend.discriminate, real))
              for mode in ("eval", "train")}
    with atomic.atomic_path(out / "init_outputs.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def _quality_samples(backend, spec, config) -> np.ndarray:
    """The run's fixed z through G (inference-mode BN), quantised exactly as a PNG stores it."""
    # At least the grid: FID on a small image folder scores fewer than 64 samples.
    count = max(config["quality"]["samples"], GRID_COUNT) if config.get("quality") else GRID_COUNT
    return data.quantize_to_uint8(backend.generate(noise.fixed_noise(config["seed"], count, spec.preset.nz)))


def _resume(backend, config, out: Path, result: dict) -> dict:
    """Load the newest checkpoint that verifies (none: start again from iteration 0), cut the
    loss log back to it, and return the harness state saved with it."""
    found = checkpoint.latest(out / "checkpoints", config)
    iteration = found.iteration if found else 0
    if found:
        backend.load_checkpoint(found.path)
        result["resumed_from"] = iteration
        result["quality_curve"] = list(found.manifest["harness"].get("quality_curve", []))
    print(f"{config['backend']}: resuming from iteration {iteration}"
          + ("" if found else " (no usable checkpoint)"), file=sys.stderr, flush=True)
    checkpoint.truncate_losses(out / "losses.csv", iteration)
    return found.manifest["harness"] if found else {}


def _save_checkpoint(backend, config, out: Path, iteration: int, result: dict, harness: dict,
                     log) -> None:
    """Native state and canonical weights of `iteration`, with what the harness needs to go on:
    the quality curve so far and the training seconds before this process (for its x axis)."""
    spec = backend.spec

    def write(folder: Path) -> None:
        backend.save_checkpoint(folder)
        canonical.save(folder / "weights.npz", backend.export_weights(), spec)

    log.flush()  # the loss rows of the iterations this checkpoint covers
    state = {"quality_curve": result.get("quality_curve", []),
             "train_seconds": harness.get("train_seconds", 0.0) + log.train_seconds}
    checkpoint.save(out / "checkpoints", iteration, write, config, state)


def _quality_probe(backend, spec, config, result, seconds_before: float = 0.0):
    """FD every K iterations against the evaluator's reference (the time-to-quality curve);
    seconds_before: training seconds of the iterations before this process (a resumed run)."""
    q = config.get("quality")
    if not q or not q.get("every"):
        return None, 0
    from common.metrics.evaluate import Evaluator
    evaluator = Evaluator(sample_count=q["samples"])
    curve = result.setdefault("quality_curve", [])

    def probe(iterations_done: int, train_seconds: float) -> dict:
        curve.append({"iteration": iterations_done, "train_seconds": seconds_before + train_seconds,
                      "fd": evaluator.fd(_quality_samples(backend, spec, config))})
        return curve[-1]
    return probe, q["every"]


def _write_artifacts(backend, spec, config, out: Path, result: dict) -> None:
    samples = _quality_samples(backend, spec, config)
    _save_npy(out / "samples.npy", samples[:GRID_COUNT])
    if config.get("quality"):
        _save_npy(out / "quality_samples.npy", samples[:config["quality"]["samples"]])
    canonical.save(out / "weights.npz", backend.export_weights(), spec)
    result.setdefault("summary", {})["peak_memory"] = backend.peak_memory()


def probe(name: str) -> int:
    """`--probe NAME`: the framework's version and devices as one JSON line (for --list)."""
    print(json.dumps(backends.load(name).probe()))
    return 0


# -h, or anything but a config file or --probe NAME: this line (run_all.py runs this module)
INTERNAL = ("python -m common.harness.worker CONFIG.json | --probe NAME: internal, one backend's "
            "child process of run_all.py; run python run_all.py")


def main(argv: list[str]) -> int:
    usable = (len(argv) == 2 and argv[0] == "--probe") or (len(argv) == 1 and Path(argv[0]).is_file())
    if not usable:
        asked = argv in (["-h"], ["--help"])
        print(INTERNAL, file=sys.stdout if asked else sys.stderr)
        return 0 if asked else 2
    if argv[0] == "--probe":
        return probe(argv[1])
    config_path = Path(argv[0])
    config = json.loads(config_path.read_text())
    if replicas.local_rank():  # a further replica on this host: local rank 0 writes the run's files
        config = launch.replica_config(config, replicas.launcher_rank())
        Path(config["out_dir"]).mkdir(parents=True, exist_ok=True)
    if replicas.launched():
        replicas.record_replica(config["out_dir"])
    # SIGTERM from the parent (timeout, its own interrupt) ends the loop like Ctrl-C; a second
    # signal (Ctrl-C reaches the whole process group, then the parent's SIGTERM) is only counted.
    stops = interrupts.Interrupts(raising=True).install()
    result = run(config, stops)
    result["pid"] = os.getpid()
    interrupts.test_signal("write")
    if stops.count > 1:
        result["later_signals"] = stops.count - 1
    atomic.write_json(Path(config["out_dir"]) / "result.json", result)
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
