"""The throughput grid: backend x configuration x batch size, one preset per call.

    python -m benchmarks.throughput --backend all --preset mnist32 --batch-sizes 16,64,256 \\
        --configs spec,best --bare --images 2048 --quality-iters 300

Every cell is its own process, alone on the machine: a `run_all.py --dataset synthetic` run (the
harness as users run it; quality probes off), or with --bare the framework's bare reference loop
(`python -m benchmarks.bare`, no harness). A cell is time-boxed by work, not by luck: it trains
ceil(--images / batch) iterations (at least --min-iters), so every batch size sees the same
number of images. A backend may run in another Python environment (`--backend jax@newest`,
`all@ENV`, ENV a built environment or a Python's absolute path, as run_all.py takes it): its
cells run there, its bare loop too, and its rows carry the label beside the plain backend.
Configurations: `spec` (full float32, what parity is proven on), `best` (each
framework's fast paths on that device, benchmarks/configs.py) or single fast paths (an ablation).
With --quality-iters, every backend whose best configuration differs from spec also trains that
many iterations on real digits in both configurations and the evaluator scores the samples, so a
faster path that generates worse samples shows. Per cell the table gives the median over repeats
of each run's median img/s (warm-up excluded; IQR and range beside it), first-step seconds, peak
memory, harness share, the loss against the bare loop, GFLOP/s (common/metrics/flops.py) and the
fractions of the GEMM peak measured first (benchmarks/peak.py) and of a GPU's datasheet peak;
with repeats, spec against bare and every fast path against spec are paired per repeat.
Writes OUT/throughput.{json,md} and OUT/scaling.png; publishing: docs/publish.md.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import backends  # noqa: E402  (the registry imports no framework)
from benchmarks import configs, grid_output, grid_rows, peak  # noqa: E402
from common import atomic, cli, sysinfo  # noqa: E402
from common.harness import child, environment  # noqa: E402
from common.metrics import flops  # noqa: E402
from common.options import EXIT_USAGE, UsageError  # noqa: E402
from common.results import schema, tables  # noqa: E402
from common.spec import model_spec  # noqa: E402

RESULTS_DIR = REPO / "benchmarks" / "results"


def parse_args(argv):
    p = cli.entry_parser("python -m benchmarks.throughput", __doc__, epilog=(
        "examples:\n"
        "  python -m benchmarks.throughput --preset mnist32\n"
        "  python -m benchmarks.throughput --device gpu --batch-sizes 64,256,1024\n"
        "then: python -m benchmarks.publish <--out folder>/throughput.json (docs/publish.md)"))
    cli.add_run_options(p, "backend", "preset", backend_names=backends.NAMES,
                        preset=("mnist32", "mnist32"))
    p.add_argument("--batch-sizes", default="16,64,256", metavar="LIST",
                   help="comma-separated batch sizes, one cell each; the README's headline is "
                        "batch 64 (default 16,64,256)")
    p.add_argument("--configs", default="spec,best", metavar="LIST",
                   help="comma-separated: spec, best, or '+'-joined fast paths "
                        f"({', '.join(configs.FAST_PATHS)}) for an ablation (default spec,best)")
    p.add_argument("--bare", action="store_true",
                   help="also time each framework's bare reference loop (default: off)")
    p.add_argument("--images", type=int, default=2048, metavar="N",
                   help="images per cell: the time box (default 2048)")
    p.add_argument("--min-iters", type=int, default=grid_output.HEADLINE_MIN_ITERS, metavar="N",
                   help=f"iterations per cell at least (default {grid_output.HEADLINE_MIN_ITERS})")
    p.add_argument("--repeats", type=int, default=1, metavar="N",
                   help="runs per cell, interleaved (every cell, then every cell again); the cell is "
                        "their median, with their range (default 1)")
    p.add_argument("--quality-iters", type=int, default=0, metavar="N",
                   help="train best and spec this many iterations on real digits and score them "
                        "(default 0: off)")
    cli.add_run_options(p, "threads", "device")
    p.add_argument("--peak-seconds", type=float, default=2.0, metavar="S",
                   help="seconds of large GEMMs per precision to measure the device's peak first "
                        "(default 2; 0: off)")
    p.add_argument("--peaks", metavar="FILE",
                   help="peaks measured earlier on this machine, as throughput.json's 'peaks' "
                        "({device: {precision: ...}}), instead of measuring them (the GPU check "
                        "measures once for all its cells)")
    p.add_argument("--out", metavar="DIR",
                   help="results folder to create (default: benchmarks/results/<machine>-<date>-<preset>, "
                        "-2 ... when taken; a quick try, which publish --readme leaves out: "
                        "runs/<machine>-<date>-<preset>-quick)")
    p.add_argument("--work", metavar="DIR",
                   help="raw run folders of every cell (default: runs/bench-<timestamp>)")
    args = p.parse_args(argv)
    try:
        args.batches = [int(b) for b in args.batch_sizes.split(",")]
    except ValueError:
        p.error(f"--batch-sizes takes comma-separated integers, got {args.batch_sizes!r}")
    if any(b <= 0 for b in args.batches) or min(args.images, args.min_iters, args.repeats, args.threads) <= 0:
        p.error("--batch-sizes, --images, --min-iters, --repeats and --threads must be positive")
    try:
        args.backends = cli.parse_backends(args.backend, backends.NAMES, environments=True)
    except UsageError as exc:
        p.error(str(exc))
    args.config_list = [c.strip() for c in args.configs.split(",") if c.strip()]
    first = cli.split_label(args.backends[0])[0]  # 'all' of all@ENV: any backend checks the names
    try:
        for c in args.config_list:
            configs.fast_paths(c, backends.NAMES[0] if first == "all" else first, "cpu")
    except configs.ConfigError as exc:
        p.error(str(exc))
    args.measured_peaks = None
    if args.peaks:
        try:
            args.measured_peaks = json.loads(Path(args.peaks).read_text())
            if not (isinstance(args.measured_peaks, dict)
                    and all(isinstance(v, dict) for v in args.measured_peaks.values())):
                raise ValueError("not {device: {precision: ...}}")
        except (OSError, ValueError) as exc:
            p.error(f"--peaks {args.peaks}: {exc}; give a file as throughput.json's 'peaks' "
                    "(or drop --peaks to measure them)")
    try:  # every other environment runs its backend, or one line and exit 2 before any cell
        args.backends, args.environments = environment.other_environments(args.backends)
    except UsageError as exc:
        p.error(str(exc))
    return args


def machine_slug() -> str:
    """The machine in a folder's name: the GPU's model, or the CPU's model with the logical CPU
    count (nvidia-h100-80gb-hbm3, amd-epyc-7b13-2core, intel-xeon-platinum-8481c-2core): two
    machines with the same count of different CPUs never share a name."""
    gpus = sysinfo.gpu_models()
    if gpus:
        name = gpus[0].split(",")[0]
    else:  # "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz", "AMD EPYC 7B13 64-Core Processor"
        model = re.sub(r"\((r|tm)\)|@.*|\b(cpu|processor|\d+-core)\b", " ", sysinfo.cpu_model(), flags=re.IGNORECASE)
        name = f"{model} {os.cpu_count()}core"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def new_folder(parent: Path, name: str) -> Path:
    """parent/name, or name-2, name-3 ... where it exists: a second grid of the same day and
    machine (a quick try, then the real one) gets its own folder."""
    path, n = parent / name, 2
    while path.exists():
        path, n = parent / f"{name}-{n}", n + 1
    return path


def iterations(args, batch: int) -> int:
    return max(args.min_iters, math.ceil(args.images / batch))


# ----- one cell -----
def _run(cmd: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env=env)


def harness_cell(args, label: str, paths: tuple, batch: int, out: Path, dataset="synthetic",
                 iters: int | None = None) -> dict:
    """One run_all.py run of one backend (label: its name, or NAME@ENV to run it in that
    environment); its result (whatever its status) plus the provenance."""
    # no quality probes inside timed runs; figures unread
    cmd = [*cli.run_all_command(backend=label, dataset=dataset, preset=args.preset, batch_size=batch,
                                iters=iters or iterations(args, batch), device=args.device, threads=args.threads,
                                out=out, quiet=True, quality_every=0, figures=False), *configs.flags(paths)]
    load = os.getloadavg()[0]
    proc = _run(cmd)
    if not (out / "results.json").exists():
        return {"status": "failed", "reason": f"run_all.py: {proc.stderr.strip()[-300:]}", "load_before": load}
    results = schema.load_results(out / "results.json")
    r = dict(results["backends"][label], load_before=load)
    r["provenance"] = results["provenance"]
    return r


def bare_cell(args, label: str, batch: int, out: Path) -> dict:
    """The framework's bare loop (benchmarks/bare/, by the plain name) in a fresh process with the
    environment a harness worker gets, in the label's interpreter (NAME@ENV: ENV's)."""
    out.mkdir(parents=True, exist_ok=True)
    env = child.process_env(args.threads)
    device = "cpu" if args.device == "auto" and backend_device(args, label) == "cpu" else args.device
    cmd = [interpreter(args, label), "-m", "benchmarks.bare", "--backend", cli.split_label(label)[0],
           "--preset", args.preset, "--batch-size", str(batch), "--iters", str(iterations(args, batch)), "--threads",
           str(args.threads), "--device", "gpu" if device == "gpu" else "cpu", "--out", str(out / "bare.json")]
    load = os.getloadavg()[0]
    proc = _run(cmd, env)
    if proc.returncode or not (out / "bare.json").exists():
        return {"status": "failed", "reason": f"bare loop: {proc.stderr.strip()[-300:]}", "load_before": load}
    bare, summary = bare_summary(out, batch)
    return {"status": "ok", "summary": summary, "load_before": load,
            "device": {"device": device if device != "auto" else "cpu", "threads": bare.get("threads"),
                       "framework_version": bare.get("framework_version")}}


def bare_summary(out: Path, batch: int) -> tuple[dict, dict]:
    """A bare loop's bare.json in run folder `out`, and its steps summarised as a harness run's."""
    from common.timing import summarize
    bare = json.loads((out / "bare.json").read_text())
    return bare, dict(summarize(bare["step_seconds"], batch), peak_memory=bare["peak_memory"])


def run_folder(work: Path, name: str, label: str, batch: int, k: int) -> Path:
    """Repeat k (from 1) of one cell's run folder under --work (name: the backend's label, an
    interpreter path's separators made one name as in a run folder)."""
    return work / f"{schema.label_folder(name)}-{label.split(' ')[0].replace('+', '-')}-b{batch}-r{k}"


def interpreter(args, label: str) -> str:
    """The Python a label's cells run in: its checked environment's, else this one."""
    return (getattr(args, "environments", {}).get(label) or {}).get("interpreter") or sys.executable


def unavailable(args, label: str) -> str | None:
    """Why a label cannot run here, or None: a plain name's framework must import in this
    interpreter; a NAME@ENV label was checked in its environment when the grid started."""
    return None if label in getattr(args, "environments", {}) else backends.unavailable_reason(label)


_DEVICES: dict[str, str] = {}


def backend_device(args, label: str) -> str:
    """'gpu' if this backend will run on a GPU (its framework sees one, in its label's
    interpreter, and --device allows it)."""
    if args.device == "cpu":
        return "cpu"
    if label not in _DEVICES:
        probed = (getattr(args, "environments", {}).get(label) or {}).get("framework")
        if probed is None:
            proc = subprocess.run([sys.executable, "-m", "common.harness.worker", "--probe", label], cwd=REPO,
                                  capture_output=True, text=True)
            try:
                probed = json.loads(proc.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                probed = {}
        devices = probed.get("devices") or ["cpu"]
        _DEVICES[label] = "gpu" if any(d != "cpu" for d in devices) else "cpu"
    return _DEVICES[label]


def measure_peaks(args, work: Path) -> dict:
    """{device: {precision: measured peak}} for every device and precision the grid's cells use."""
    devices = {"cpu" if unavailable(args, n) else backend_device(args, n) for n in args.backends}
    precisions = ["fp32"] + (["bf16"] if any("bf16" in c or c == "best" for c in args.config_list) else [])
    out = {}
    for device in sorted(devices):
        print(f"measured peak: {device} {', '.join(precisions)}", file=sys.stderr, flush=True)
        out[device] = peak.measure_in_subprocess(precisions, device, args.threads, args.peak_seconds, work)
    return out


def quality_rows(args, work: Path) -> list[dict]:
    """Spec and best trained alike on real digits, both scored: does the fast path cost quality?"""
    rows = []
    for name in args.backends:
        paths = configs.fast_paths("best", cli.split_label(name)[0], backend_device(args, name))
        if isinstance(paths, str) or not paths or unavailable(args, name):
            continue
        for p in ((), paths):
            label = configs.label(p)
            print(f"quality: {name} {label}", file=sys.stderr, flush=True)
            folder = work / f"quality-{schema.label_folder(name)}-{'-'.join(p) or 'spec'}"
            r = harness_cell(args, name, p, 64, folder, dataset="mnist-5k", iters=args.quality_iters)
            row = {"backend": cli.split_label(name)[0], "label": name, "config": label,
                   "iterations": args.quality_iters, "status": r["status"]}
            q = r.get("quality")
            if q:
                row.update({"FD": tables.spread(q, "fd", 1), "classifier score": tables.spread(q, "classifier_score", 2),
                            "img/s": round(r["summary"]["img_per_s_median"], 1),
                            "final loss_D": round(r["final_losses"]["loss_d"], 3),
                            "final loss_G": round(r["final_losses"]["loss_g"], 3)})
            else:
                row["reason"] = r.get("reason") or r.get("quality_error") or "no quality (no evaluator for this data)"
            rows.append(row)
    return rows


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    today = dt.date.today().isoformat()
    # A quick try (grid_output.quick_try) goes to the scratch runs/, a complete grid to the
    # published benchmarks/results/; neither takes the other's name.
    quick = grid_output.quick_try(vars(args))
    name = f"{machine_slug()}-{today}-{args.preset}" + ("-quick" if quick else "")
    out = Path(args.out).resolve() if args.out else new_folder(REPO / "runs" if quick else RESULTS_DIR, name)
    if out.exists():
        print(f"benchmarks.throughput: {out} already exists; choose a new --out", file=sys.stderr)
        return EXIT_USAGE
    out.mkdir(parents=True)
    work = (Path(args.work).resolve() if args.work
            else new_folder(REPO / "runs", f"bench-{dt.datetime.now():%Y%m%d-%H%M%S}"))
    spec = model_spec(args.preset)
    command = "python -m benchmarks.throughput " + " ".join(sys.argv[1:] if argv is None else argv)
    started, t0 = dt.datetime.now().astimezone(), dt.datetime.now()
    rows, provenance = [], None
    peaks = (args.measured_peaks if args.measured_peaks is not None
             else measure_peaks(args, work) if args.peak_seconds > 0 else {})
    plan_rows: list = []  # a cell (name, label, paths, batch), or a row saying why none runs
    for name in args.backends:  # a label: the backend's name, or NAME@ENV
        reason = unavailable(args, name)
        device = "cpu" if reason else backend_device(args, name)
        plan = [(c, configs.fast_paths(c, cli.split_label(name)[0], device)) for c in args.config_list]
        if args.bare:
            plan.append(("bare loop", "bare"))
        for config, paths in plan:
            if reason or isinstance(paths, str) and paths != "bare":  # one row says why
                plan_rows.append({"backend": cli.split_label(name)[0], "label": name, "config": config,
                                  "batch": "all", "status": "skipped", "reason": reason or paths})
                continue
            label = config if paths == "bare" else configs.label(paths)
            for batch in args.batches:
                plan_rows.append((name, label, paths, batch))
    # Repeats interleaved: every cell once, then every cell again, so that a neighbour's load
    # or the machine's drift falls on all cells alike and spec and bare pair up per repeat.
    runs: dict[tuple, list[dict]] = {}
    # NAME@ENV label -> its environment: as checked, then as its first run's results.json records it
    environments = {label: {k: v for k, v in info.items() if k != "framework"}
                    for label, info in args.environments.items()}
    recorded: set[str] = set()
    for k in range(args.repeats):
        for item in plan_rows:
            if isinstance(item, dict):
                continue
            name, label, paths, batch = item
            print(f"{name} {label} batch {batch} run {k + 1}/{args.repeats}", file=sys.stderr, flush=True)
            cell = run_folder(work, name, label, batch, k + 1)
            before = sysinfo.load_sample()
            r = (bare_cell(args, name, batch, cell) if paths == "bare"
                 else harness_cell(args, name, paths, batch, cell))
            # a hypervisor taking the CPU slows a run without raising the load average, so it is
            # measured per run (benchmarks/README.md#idiom-cost-where-fit--tfdata-and-the-module-calls-spend-the-time)
            r["cpu_stolen"] = sysinfo.machine_load(before, sysinfo.load_sample()).get("cpu_steal_fraction")
            provenance = r.pop("provenance", None) or provenance
            if r.get("environment") and name in environments and name not in recorded:
                environments[name] = r["environment"]  # the versions the row ran with
                recorded.add(name)
            runs.setdefault(item, []).append(r)
    for item in plan_rows:
        rows.append(item if isinstance(item, dict)
                    else grid_rows.cell_row(spec, item[0], item[1], item[3], runs[item], peaks))
    grid_rows.add_bare_comparison(rows)
    grid_rows.add_spec_comparison(rows)
    q_rows = quality_rows(args, work) if args.quality_iters else []
    doc = {"command": command, "args": {k: v for k, v in vars(args).items()
                                        if k not in ("batches", "measured_peaks", "environments")},
           "started": started.isoformat(timespec="seconds"),
           "finished": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
           "grid_seconds": (dt.datetime.now() - t0).total_seconds(),
           "provenance": provenance or sysinfo.provenance(), "environments": environments,
           "flops_per_image": flops.iteration_flops_per_image(spec), "peaks": peaks,
           "rows": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
           "quality_rows": q_rows}
    grid_output.scaling_figure(doc, rows, out / "scaling.png")
    atomic.write_json(out / "throughput.json", doc)
    text = grid_output.render(doc)
    atomic.write_text(out / "throughput.md", text)
    print(grid_output.terminal(doc, display_path(out)))
    print(f"Raw run folders:\n  {display_path(work)}/")
    return 0


def display_path(path: Path) -> Path:
    """A folder as a person types it: relative to the checkout when under it."""
    return path.relative_to(REPO) if path.is_relative_to(REPO) else path


if __name__ == "__main__":
    sys.exit(main())
