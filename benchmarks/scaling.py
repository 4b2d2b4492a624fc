"""Data-parallel scaling: each backend at several replica counts, same global batch, synthetic data.

    python -m benchmarks.scaling --backend pytorch,mxnet --devices 1,2 --batch-size 64 --iters 40

Each replica count is one `run_all.py --dataset synthetic --devices N` run (quality probes off)
into OUT/r<repeat>/d<N>/, repeated --repeats times with the counts interleaved (1, 2, 1, 2, ...),
so a machine whose speed drifts over minutes shifts every count alike; OUT/scaling.md,
scaling.json and scaling.png give the median img/s over the repeats (and their range) against
replica count and efficiency against linear (common/results/replica_scaling.py). `--from-runs DIR ...` tabulates
finished run folders instead of training. A backend may run in another Python environment
(`--backend jax@newest`, `all@ENV`, as run_all.py takes it): its rows carry the label beside the
plain backend, and the table names each environment's Python and versions.
"""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import backends  # noqa: E402  (the registry imports no framework)
from common import atomic, cli  # noqa: E402
from common.harness import environment  # noqa: E402
from common.options import UsageError  # noqa: E402
from common.results import replica_scaling, schema  # noqa: E402
from common.results.markdown import environment_lines, machine_line  # noqa: E402
from common.results.tables import table, without_plain_labels  # noqa: E402


def parse_args(argv):
    p = cli.entry_parser("python -m benchmarks.scaling", __doc__,
                         epilog="example: python -m benchmarks.scaling --backend pytorch "
                                "--devices 1,2,4 --device gpu (docs/data-parallel.md)")
    cli.add_run_options(p, "backend", backend_names=backends.NAMES)
    p.add_argument("--devices", default="1,2", metavar="LIST",
                   help="comma-separated replica counts, one run each (default 1,2)")
    cli.add_run_options(p, "batch_size", "iters", iters=(40, "40"))
    p.add_argument("--repeats", type=int, default=3, metavar="N",
                   help="runs per replica count, interleaved (default 3)")
    cli.add_run_options(p, "preset", "device", preset=("mnist32", "mnist32"))
    p.add_argument("--from-runs", nargs="+", metavar="DIR", help="tabulate these run folders; no training (default: train)")
    p.add_argument("--out", metavar="DIR", help="folder to create (default: runs/scaling-<timestamp>)")
    args = p.parse_args(argv)
    try:
        args.counts = [int(n) for n in args.devices.split(",")]
    except ValueError:
        p.error(f"--devices takes comma-separated integers like 1,2, got {args.devices!r}")
    try:
        args.backends = cli.parse_backends(args.backend, backends.NAMES, environments=True)
    except UsageError as exc:
        p.error(str(exc))
    problem = cli.bounds_problem(args, ("batch_size", "iters"))
    if problem:
        p.error(problem)
    if args.repeats < 1:
        p.error(f"--repeats must be positive, got {args.repeats}")
    if any(n <= 0 or args.batch_size % n for n in args.counts):
        p.error(f"--devices {args.devices}: every count must be positive and divide --batch-size "
                f"{args.batch_size}")
    if not args.from_runs:
        try:  # every other environment runs its backend, or one line and exit 2 before any run
            args.backends, _ = environment.other_environments(args.backends)
        except UsageError as exc:
            p.error(str(exc))
    return args


def run_one(args, devices: int, out: Path) -> dict:
    cmd = cli.run_all_command(backend=args.backends, dataset="synthetic", preset=args.preset,
                              batch_size=args.batch_size, iters=args.iters, devices=devices, quality_every=0,
                              device=args.device, out=out, quiet=True)
    proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if not (out / "results.json").exists():
        raise SystemExit(f"benchmarks.scaling: run_all.py failed: {proc.stderr.strip()[-500:]}")
    return schema.load_results(out / "results.json")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    out = Path(args.out) if args.out else REPO / "runs" / f"scaling-{dt.datetime.now():%Y%m%d-%H%M%S}"
    if out.exists():
        raise SystemExit(f"benchmarks.scaling: {out} already exists; choose a new --out")
    if args.from_runs:
        runs = [schema.load_results(Path(d) / "results.json") for d in args.from_runs]
        out.mkdir(parents=True)
    else:
        out.mkdir(parents=True)
        runs, loads = [], []
        for r in range(args.repeats):
            for n in args.counts:
                print(f"repeat {r + 1}/{args.repeats}: --devices {n}", file=sys.stderr, flush=True)
                loads.append(os.getloadavg()[0])
                runs.append(run_one(args, n, out / f"r{r}" / f"d{n}"))
    rows = replica_scaling.scaling_rows(runs)
    prov, cfg = runs[0]["provenance"], runs[0]["config"]
    command = "python -m benchmarks.scaling " + " ".join(argv)
    text = "\n".join([
        f"Command: `{command}`", "",
        machine_line(prov),
        f"- {cfg['dataset']} data, preset {cfg['preset']}, global batch {cfg['batch_size']}, "
        f"{cfg['iters']} iterations per run; img/s is the median over runs of each run's median "
        "step (warm-up excluded), range over runs beside it; "
        "efficiency = img/s / (replicas x img/s at 1 replica)",
        *([f"- 1-minute load average before each run: {min(loads):.2f}-{max(loads):.2f}"] if not args.from_runs else []),
        *dict.fromkeys(line for run in runs for line in environment_lines(run)),
        f"- Code: git {(prov.get('git') or {}).get('commit')}", "",
        table(without_plain_labels(rows), "github"), ""])
    if rows:
        devices = sorted({((r["backends"][b] or {}).get("device") or {}).get("device") or "?"
                          for r in runs for b in r["backends"]})
        replica_scaling.scaling_chart(rows, out / "scaling.png",
                                      f"{cfg['dataset']}, preset {cfg['preset']}, global batch "
                                      f"{cfg['batch_size']}, {cfg['iters']} iterations, "
                                      f"{'/'.join(devices)} ({prov.get('cpu')})")
    atomic.write_text(out / "scaling.md", text)
    atomic.write_json(out / "scaling.json", {"command": command, "rows": rows})
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
