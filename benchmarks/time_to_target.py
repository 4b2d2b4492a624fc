"""Time to target quality: every backend trained to one FD target, several seeds, one table.

    python -m benchmarks.time_to_target --target-fd 500 --iters 1000 --quality-every 50
    python -m benchmarks.time_to_target --backend jax,jax@newest --target-fd 500   # two releases

One `run_all.py --dataset mnist --target-fd F --seeds LIST` run into RUNS: each backend trains
each seed until the FD of its fixed-z samples is at most F (checked every --quality-every K
iterations and at the last) or the --iters budget runs out. OUT/time_to_target.json holds one
record per backend and seed ({"backend", "seed", "target_fd", "reached", "iterations",
"seconds"}; seconds: training seconds, the checks' evaluation excluded, docs/outputs.md) with
the setting, the machine and every framework's version, and the rows per backend: how many
seeds reached the target, the median and range (min-max) of iterations and seconds, a seed that
missed it ranked slowest. OUT/time_to_target.md is the table. These are timings: run it alone
on an idle machine. An interrupted run goes on with `python run_all.py --resume RUNS`, then
`--from-run RUNS` tabulates it (or any finished run made with --target-fd and --seeds).
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
from benchmarks.throughput import RESULTS_DIR, machine_slug  # noqa: E402
from common import atomic, cli  # noqa: E402
from common.harness import environment  # noqa: E402
from common.options import UsageError  # noqa: E402
from common.results import schema, tables  # noqa: E402
from common.results.markdown import environment_lines, machine_line  # noqa: E402

MIN_SEEDS = 3  # one seed is never a ranking; three give a median and a range


def parse_args(argv):
    p = cli.entry_parser("python -m benchmarks.time_to_target", __doc__, epilog=(
        "examples:\n"
        "  python -m benchmarks.time_to_target --target-fd 500 --iters 1000 --quality-every 50\n"
        "  python -m benchmarks.time_to_target --from-run runs/ttt-20261207-0800"))
    cli.add_run_options(p, "backend", backend_names=backends.NAMES)
    cli.add_run_options(p, "target_fd", "iters", "quality_every", "seeds", "dataset", "batch_size",
                        "threads", "device", iters=(1000, "1000: the budget"),
                        quality_every=(50, "50"), seeds=("0,1,2", "0,1,2; at least 3"),
                        target_fd=(None, "none: give F, or --from-run"))
    p.add_argument("--runs", metavar="DIR",
                   help="the run folder to create (default: runs/ttt-<timestamp>)")
    p.add_argument("--from-run", metavar="DIR",
                   help="tabulate this run folder (made with --target-fd and --seeds); no training "
                        "(default: train)")
    p.add_argument("--out", metavar="DIR", help="results folder to create (default: "
                   "benchmarks/results/<machine>-<date>-time-to-target)")
    args = p.parse_args(argv)
    if args.from_run:
        return args
    try:
        args.backends, _ = environment.other_environments(  # a bad one: one line, exit 2
            cli.parse_backends(args.backend, backends.NAMES, environments=True))
    except UsageError as exc:
        p.error(str(exc))
    try:
        args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        p.error(f"--seeds takes comma-separated integers like 0,1,2, got {args.seeds!r}")
    if len(set(args.seed_list)) != len(args.seed_list) or len(args.seed_list) < MIN_SEEDS:
        p.error(f"--seeds needs at least {MIN_SEEDS} distinct seeds (one seed is never a ranking), "
                f"got {args.seeds!r}")
    if args.target_fd is None:
        p.error("--target-fd F is needed (the FD every backend trains to), or --from-run DIR")
    problem = cli.bounds_problem(args, ("target_fd", "iters", "quality_every", "batch_size", "threads"))
    if problem:
        p.error(problem)
    if args.quality_every == 0:
        p.error("--quality-every 0 turns off the FD checks that --target-fd needs; give K > 0")
    return args


def train(args, runs: Path) -> None:
    """The one run_all.py run of every backend and seed; its own bad-input line stands."""
    cmd = cli.run_all_command(backend=args.backends, dataset=args.dataset, iters=args.iters,
                              batch_size=args.batch_size, seeds=args.seed_list,
                              target_fd=args.target_fd, quality_every=args.quality_every,
                              threads=args.threads, device=args.device, out=runs, quiet=True,
                              figures=False)
    print(f"benchmarks.time_to_target: {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          check=False)
    if not (runs / "results.json").exists():
        raise SystemExit(f"benchmarks.time_to_target: run_all.py failed: {proc.stderr.strip()[-500:]}")


def records(results: dict) -> list[dict]:
    """One record per backend and seed that finished with a time to target."""
    seeds = results["config"].get("seeds") or [results["config"]["seed"]]
    out = []
    for seed, run in zip(seeds, schema.seed_runs(results)):
        for name, r in run.items():
            ttt = schema.time_to_target(r)
            if ttt and r.get("status") == "ok":
                out.append({"backend": r.get("backend") or cli.split_label(name)[0], "label": name,
                            "seed": seed, **ttt,
                            "iterations_done": r.get("iterations_done"),
                            "machine_load": r.get("machine_load")})
    return out


def document(results: dict, command: str) -> tuple[dict, str]:
    """time_to_target.json's object and time_to_target.md's text for a run's results."""
    cfg, prov, ds = results["config"], results["provenance"], results.get("dataset") or {}
    q = cfg.get("quality") or {}
    rows = tables.time_to_target_rows(results)
    setting = {"dataset": ds.get("name", cfg["dataset"]), "preset": cfg["preset"],
               "batch_size": cfg["batch_size"], "iters": cfg["iters"], "threads": cfg.get("threads"),
               "device": cfg.get("device"), "target_fd": q.get("target_fd"),
               "quality_every": q.get("every"), "seeds": cfg.get("seeds") or [cfg["seed"]]}
    doc = {"command": command, "run_command": results.get("command"), "setting": setting,
           "machine": {"cpu": prov.get("cpu"), "cpu_count": prov.get("cpu_count"),
                       "gpus": prov.get("gpus") or []},
           "versions": prov.get("packages"), "git": prov.get("git"),
           "records": records(results), "rows": rows}
    loads = [v for r in doc["records"] for v in ((r.get("machine_load") or {}).get("load1_before"),)
             if v is not None]
    threads = setting["threads"]
    text = "\n".join([
        f"Command: `{command}`", "",
        machine_line(prov),
        "- Software: " + ", ".join(f"{k} {v}" for k, v in (prov.get("packages") or {}).items()),
        *environment_lines(results),  # the rows run in another environment, with its versions
        (f"- {setting['dataset']}, preset {setting['preset']}, batch {setting['batch_size']}, "
         f"target FD <= {setting['target_fd']:g} on the fixed-z samples, checked every "
         f"{setting['quality_every']} iterations and at the last, budget {setting['iters']} "
         f"iterations; seeds {', '.join(map(str, setting['seeds']))}"),
        *([f"- 1-minute load average before each backend: {min(loads):.2f}-{max(loads):.2f}"]
          if loads else []),
        *([(f"- **warning: a load average above {threads} threads + 1: the machine was busy, so "
            "these seconds are not an idle machine's; do not publish them**")]
          if loads and threads and max(loads) > threads + tables.BUSY_MARGIN else []),
        f"- Code: git {(prov.get('git') or {}).get('commit')}"
        + (" (dirty)" if (prov.get("git") or {}).get("dirty") else ""), "",
        ("iterations: the first check at or under the target (resolved to the check interval); "
         "train s: the backend's own step times summed up to it (first step and compilation "
         "included, the checks' evaluation excluded). Median (min-max) over the seeds that "
         "finished; a seed that missed the target ranks slowest. vs fastest: the median train s "
         "over the fastest backend's; 'ranges apart' when every seed took longer than every seed "
         "of the fastest; where the ranges overlap these seeds separate nothing (3 seeds against 3 "
         "allow no rank test at 5%: the smallest exact two-sided Mann-Whitney p is 0.1)."), "",
        tables.table(rows, "github") if rows else "No backend finished with a time to target.", ""])
    return doc, text


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    today = dt.date.today().isoformat()
    out = Path(args.out) if args.out else RESULTS_DIR / f"{machine_slug()}-{today}-time-to-target"
    if out.exists():
        print(f"benchmarks.time_to_target: {out} already exists; choose a new --out", file=sys.stderr)
        return 2
    if args.from_run:
        runs = Path(args.from_run)
    else:
        runs = Path(args.runs) if args.runs else REPO / "runs" / f"ttt-{dt.datetime.now():%Y%m%d-%H%M%S}"
        if runs.exists():
            print(f"benchmarks.time_to_target: {runs} already exists; choose a new --runs, or "
                  f"tabulate it with --from-run {runs}", file=sys.stderr)
            return 2
        print(f"benchmarks.time_to_target: load average {os.getloadavg()[0]:.2f} before training "
              "(timings need an idle machine)", file=sys.stderr)
        train(args, runs)
    try:
        results = schema.load_results(runs / "results.json")
    except (OSError, ValueError) as exc:
        print(f"benchmarks.time_to_target: {runs / 'results.json'}: {exc}", file=sys.stderr)
        return 2
    if not (results["config"].get("quality") or {}).get("target_fd"):
        print(f"benchmarks.time_to_target: {runs} was not run with --target-fd; nothing to tabulate",
              file=sys.stderr)
        return 2
    doc, text = document(results, "python -m benchmarks.time_to_target " + " ".join(argv))
    out.mkdir(parents=True)
    atomic.write_json(out / "time_to_target.json", doc)
    atomic.write_text(out / "time_to_target.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
