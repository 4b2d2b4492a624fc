"""Memory soak: each backend trained for a fixed time while its memory is sampled; the growth
after warm-up must stay under a bound derived from the run's own noise.

    python -m benchmarks.soak --backend pytorch --minutes 10
    python -m benchmarks.soak --backend jax,jax@newest --minutes 10   # two environments

Each backend is one `run_all.py --dataset synthetic --quality-every 0` run (OUT/runs/LABEL) with
more iterations than the time allows; every --interval seconds the soak records the iterations
done (the lines of its losses.csv) and the resident memory (RSS, /proc) of the run's processes
below run_all.py (the worker, or the launcher and its replicas), and on a GPU the device memory
nvidia-smi reports for them (the driver's view: what the framework's allocator holds, its cache
included, plus the context). After --minutes the run is stopped like Ctrl-C (SIGTERM).

The check, per series (RSS, and GPU memory where measured): the samples of the first
--warmup-fraction of the time (default half) are dropped (graphs built, caches and allocator pools
filled: with the fixed harness, RSS settled only after 150-180 s of a 6-minute soak); a
least-squares line of memory (MiB) against iterations (thousands) is fitted to the rest; its
slope must not exceed the bound

    bound = max(3 * SE, 2 * sigma / span, page / span)

where sigma is the standard deviation of the samples around the line (the measured noise), SE
= sigma / sqrt(sum((k - mean k)^2)) the slope's standard error, span the thousands of
iterations after warm-up and page the RSS's resolution (4 KiB). 3 * SE is the statistical test
(a slope three standard errors above zero); 2 * sigma / span is the floor for noise that is not
independent from sample to sample (allocator steps make SE too small): a line whose whole rise
over the window stays inside the +-sigma band around it cannot be told from the noise. A leak
of L MiB per 1000 iterations is caught once L * span exceeds 2 * sigma: longer soaks catch
smaller leaks. The iterations come from losses.csv, which the harness flushes every 25 of
them, so a soak needs some hundreds of iterations after warm-up ("too short" otherwise: no
verdict). OUT/soak.json holds one record per backend, OUT/soak.md its table; the exit status is 0
only if every backend's memory stayed flat. `--refit OUT` fits a finished soak's samples
(OUT/<label>.samples.json) again with another --warmup-fraction and rewrites both files.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import backends  # the registry imports no framework
from common import atomic, cli
from common.harness import environment
from common.options import UsageError
from common.results.markdown import machine_line
from common.results.schema import label_folder
from common.results.tables import table

MIB = 2 ** 20
PAGE_MIB = 4096 / MIB          # RSS is counted in pages
STOP_WAIT_S = 60               # after SIGTERM, how long run_all.py may take to write its results
ITERS_CEILING = 10_000_000     # --iters of the soaked run: more than any soak reaches
# The share of the soak left out of the fit: PyTorch's and MXNet's RSS (fixed harness) rose until
# 170 s into a 6-minute soak, then stayed to the page (benchmarks/README.md#memory-soak).
WARMUP_FRACTION = 0.5


# ----- sampling -----
def descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux /proc; children of each thread)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def rss_bytes(pids) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue  # ended between the listing and the read
    return total


def gpu_bytes(pids) -> int | None:
    """Device memory of these processes as nvidia-smi reports it; None without nvidia-smi."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, "--query-compute-apps=pid,used_memory",
                              "--format=csv,noheader,nounits"], check=False, capture_output=True,
                             text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    wanted, total = set(pids), 0
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0].isdigit() and int(parts[0]) in wanted:
            total += int(parts[1]) * MIB
    return total


class LineCounter:
    """Lines of a file that grows (losses.csv, appended and flushed as training goes), counted
    incrementally; iterations = lines - 1 (its header)."""

    def __init__(self, path: Path):
        self.path, self.offset, self.lines = Path(path), 0, 0

    def __call__(self) -> int:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except OSError:
            return 0
        self.offset += len(chunk)
        self.lines += chunk.count(b"\n")
        return max(0, self.lines - 1)


def sample(pid: int, iterations: Callable[[], int], seconds: float, interval: float,
           gpu: bool = False) -> list[dict]:
    """Samples of the processes below `pid` (the process itself when it has none) every
    `interval` seconds for `seconds`, or until it ends: {t, iterations, rss_mib, gpu_mib}."""
    samples, start = [], time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        pids = descendants(pid) or [pid]
        row = {"t": round(elapsed, 3), "iterations": iterations(), "rss_mib": rss_bytes(pids) / MIB}
        if gpu and (used := gpu_bytes(pids)) is not None:
            row["gpu_mib"] = used / MIB
        if row["rss_mib"]:
            samples.append(row)
        time.sleep(interval)
    return samples


# ----- the check -----
def fit(samples: list[dict], key: str = "rss_mib", warmup_fraction: float = WARMUP_FRACTION) -> dict:
    """The slope of `key` (MiB) per 1000 iterations after warm-up, the bound it must stay under
    (the module's docstring derives it) and the verdict."""
    if not samples:
        return {"status": "too short", "reason": "no samples"}
    cut = samples[-1]["t"] * warmup_fraction
    rows = [s for s in samples if s["t"] >= cut and s.get(key) is not None]
    x = [s["iterations"] / 1000 for s in rows]
    y = [s[key] for s in rows]
    if len(rows) < 10 or len(set(x)) < 3:
        return {"status": "too short", "samples_after_warmup": len(rows),
                "reason": "fewer than 10 samples or 3 distinct iteration counts after warm-up; "
                          "soak longer or sample more often"}
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxx = sum((a - mx) ** 2 for a in x)
    slope = sum((a - mx) * (b - my) for a, b in zip(x, y)) / sxx
    resid = [b - (my + slope * (a - mx)) for a, b in zip(x, y)]
    sigma = math.sqrt(sum(r * r for r in resid) / max(1, n - 2))
    se = sigma / math.sqrt(sxx)
    span = max(x) - min(x)
    bound = max(3 * se, 2 * sigma / span, PAGE_MIB / span)
    return {"status": "flat" if slope <= bound else "grows",
            "slope_mib_per_1k_iters": slope, "bound": bound, "noise_sigma_mib": sigma,
            "slope_se": se, "span_kiters": span, "samples_after_warmup": n,
            "warmup_until_iteration": rows[0]["iterations"],
            "first_mib": y[0], "last_mib": y[-1]}


# ----- one backend -----
def soak_backend(args, name: str, out: Path) -> dict:
    """One label ('jax', or 'jax@newest' in another environment) soaked; its record."""
    folder = label_folder(name)
    run_dir = out / "runs" / folder
    cmd = cli.run_all_command(backend=name, dataset="synthetic", preset=args.preset,
                              batch_size=args.batch_size, iters=ITERS_CEILING, quality_every=0,
                              device=args.device, out=run_dir, quiet=True, figures=False)
    log = out / f"{folder}.stderr.txt"
    counter = LineCounter(run_dir / "backends" / folder / "losses.csv")
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True)
        try:
            samples = sample(proc.pid, counter, args.minutes * 60, args.interval,
                             gpu=args.device != "cpu")
        finally:
            stop(proc)
    record = {"backend": cli.split_label(name)[0], "label": name,
              "iterations": counter(),  # the log is complete once it stopped
              "seconds": samples[-1]["t"] if samples else 0.0, "samples": len(samples),
              "interval_s": args.interval}
    judge(record, samples, args.warmup_fraction)
    if not samples or record["iterations"] == 0:
        record.update(status="failed", reason=f"the run trained no iteration; see {log.name}")
    atomic.write_json(out / f"{folder}.samples.json", samples)
    return record


def judge(record: dict, samples: list[dict], warmup_fraction: float) -> None:
    """The record's fits and verdict from its samples: RSS, and GPU memory where sampled."""
    rss = fit(samples, "rss_mib", warmup_fraction)
    record.update(warmup_fraction=warmup_fraction, status=rss["status"],
                  rss_slope_mib_per_1k_iters=rss.get("slope_mib_per_1k_iters"), bound=rss.get("bound"), rss=rss)
    if any(s.get("gpu_mib") is not None for s in samples):
        gpu = fit(samples, "gpu_mib", warmup_fraction)
        record.update(gpu_slope_mib_per_1k_iters=gpu.get("slope_mib_per_1k_iters"),
                      gpu_bound=gpu.get("bound"), gpu=gpu)
        if gpu["status"] == "grows":
            record["status"] = "grows"


def refit(out: Path, warmup_fraction: float) -> int:
    """A finished soak's samples fitted again with another warm-up; soak.json and soak.md rewritten."""
    try:
        doc = json.loads((out / "soak.json").read_text())
        for record in doc["records"]:
            if record["status"] != "failed":
                folder = label_folder(record.get("label") or record["backend"])
                judge(record, json.loads((out / f"{folder}.samples.json").read_text()), warmup_fraction)
    except (OSError, ValueError, KeyError) as exc:
        print(f"benchmarks.soak: error: --refit needs a finished soak's soak.json and samples in {out} "
              f"({exc})", file=sys.stderr)
        return 2
    doc["refit"] = f"python -m benchmarks.soak --refit {out} --warmup-fraction {warmup_fraction:g}"
    atomic.write_json(out / "soak.json", doc)
    text = markdown(doc["records"], doc["command"], doc.get("machine"), doc["refit"])
    atomic.write_text(out / "soak.md", text)
    print(text)
    return 0 if all(r["status"] == "flat" for r in doc["records"]) else 1


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to run_all.py (it stops its child and keeps the results), then the whole group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def machine(out: Path) -> dict:
    """The machine and code of the soak's runs, from the first run's results.json provenance."""
    for path in sorted((out / "runs").glob("*/results.json")):
        try:
            prov = json.loads(path.read_text()).get("provenance") or {}
        except (OSError, ValueError):
            continue
        return {"cpu": prov.get("cpu"), "cpu_count": prov.get("cpu_count"), "gpus": prov.get("gpus") or [],
                "packages": prov.get("packages"), "git": (prov.get("git") or {}).get("commit")}
    return {}


def markdown(records: list[dict], command: str, where: dict | None = None, refitted: str = "") -> str:
    def num(v, fmt="{:.3f}"):
        return "" if v is None else fmt.format(v)
    rows = [{"backend": r.get("label") or r["backend"], "status": r["status"], "iterations": r["iterations"],
             "seconds": num(r["seconds"], "{:.0f}"),
             "RSS after warm-up MiB": f"{num(r['rss'].get('first_mib'), '{:.0f}')}"
                                      f"-{num(r['rss'].get('last_mib'), '{:.0f}')}",
             "RSS slope MiB/1k it": num(r.get("rss_slope_mib_per_1k_iters")),
             "bound": num(r.get("bound")),
             "noise sigma MiB": num(r["rss"].get("noise_sigma_mib")),
             "GPU slope MiB/1k it": num(r.get("gpu_slope_mib_per_1k_iters")),
             "GPU bound": num(r.get("gpu_bound"))} for r in records]
    fractions = sorted({f"{r['warmup_fraction']:g}" for r in records if r.get("warmup_fraction") is not None})
    return "\n".join([
        f"Command: `{command}`" + (f"; fitted again: `{refitted}`" if refitted else ""), "",
        *([machine_line(where),
           "- Software: " + ", ".join(f"{k} {v}" for k, v in (where.get("packages") or {}).items()),
           f"- Code: git {where.get('git')}", ""] if where else []),
        ("Memory of each backend's training processes sampled while it trains for a fixed time; "
         f"slope of a least-squares line after warm-up (the first {' / '.join(fractions) or '?'} of "
         "the time) against bound = max(3 SE, 2 sigma / span, "
         "4 KiB / span), sigma the samples' spread around the line (benchmarks/soak.py derives "
         "it). status flat: slope within the bound."), "",
        table(rows, "github"), ""])


def parse_args(argv):
    p = cli.entry_parser("python -m benchmarks.soak", __doc__,
                         epilog="example: python -m benchmarks.soak --backend all --minutes 10 "
                                "(an idle machine: other load moves the RSS too)")
    cli.add_run_options(p, "backend", backend_names=backends.NAMES)
    p.add_argument("--minutes", type=float, default=10.0, metavar="M",
                   help="training time per backend (default 10)")
    p.add_argument("--interval", type=float, default=1.0, metavar="SECONDS",
                   help="seconds between memory samples (default 1)")
    p.add_argument("--warmup-fraction", type=float, default=WARMUP_FRACTION, metavar="F",
                   help=f"fraction of the time whose samples are left out of the fit (default {WARMUP_FRACTION:g})")
    cli.add_run_options(p, "batch_size", "preset", "device", preset=("mnist32", "mnist32"))
    p.add_argument("--out", metavar="DIR", help="folder to create (default: runs/soak-<timestamp>)")
    p.add_argument("--refit", metavar="DIR", type=Path,
                   help="fit a finished soak's samples in DIR again with --warmup-fraction; trains nothing")
    args = p.parse_args(argv)
    try:
        args.backends, _ = environment.other_environments(  # a bad one: one line, exit 2
            cli.parse_backends(args.backend, backends.NAMES, environments=True))
    except UsageError as exc:
        p.error(str(exc))
    problem = cli.bounds_problem(args, ("batch_size",))
    if problem:
        p.error(problem)
    if not args.minutes > 0 or not args.interval > 0:
        p.error("--minutes and --interval must be positive")
    if not 0 <= args.warmup_fraction < 1:
        p.error(f"--warmup-fraction must be in [0, 1), got {args.warmup_fraction}")
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.refit:
        return refit(args.refit, args.warmup_fraction)
    out = Path(args.out) if args.out else REPO / "runs" / f"soak-{dt.datetime.now():%Y%m%d-%H%M%S}"
    if out.exists():
        raise SystemExit(f"benchmarks.soak: {out} already exists; choose a new --out")
    out.mkdir(parents=True)
    command = "python -m benchmarks.soak " + " ".join(argv)
    records = []
    for name in args.backends:
        print(f"benchmarks.soak: {name} for {args.minutes:g} min", file=sys.stderr, flush=True)
        records.append(soak_backend(args, name, out))
        # written after each backend: an interrupted soak keeps the backends it finished
        where = machine(out)
        atomic.write_json(out / "soak.json", {"command": command, "machine": where, "records": records})
        atomic.write_text(out / "soak.md", markdown(records, command, where))
    print(markdown(records, command, where))
    return 0 if all(r["status"] == "flat" for r in records) else 1  # "too short" is no pass


if __name__ == "__main__":
    sys.exit(main())
