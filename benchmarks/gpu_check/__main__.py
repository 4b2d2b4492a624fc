"""`python -m benchmarks.gpu_check`: the options, the order of the steps and the exit status
(the package's docstring says what each step does)."""
from __future__ import annotations

import datetime as dt
import signal
import sys
from pathlib import Path

import backends  # the registry imports no framework
from benchmarks import gpu_check
from benchmarks.gpu_check import quality_step, state, steps, summary
from common import atomic, cli, options
from common.options import UsageError

EXIT_USAGE = options.EXIT_USAGE
EXIT_PARTIAL = 3  # nothing failed, but the budget (or a stop) left steps out: see summary.md
ORDER = ("probe", "parity", "main", "peak", "grid", "quality")


def parse_args(argv):
    full, smoke = steps.SIZES["full"]["budget_min"], steps.SIZES["smoke"]["budget_min"]
    p = cli.entry_parser("python -m benchmarks.gpu_check", gpu_check.__doc__, epilog=(
        "examples:\n"
        "  python -m benchmarks.gpu_check                       on a GPU node\n"
        "  python -m benchmarks.gpu_check --device cpu --smoke  the same path, tiny, on a CPU\n"
        "  python -m benchmarks.gpu_check --resume DIR          continue a check the budget cut\n"
        "the steps, what they write and the exit status: docs/gpu.md"))
    p.add_argument("--device", default="gpu", choices=["gpu", "cpu"],
                   help="the device the check proves: gpu on a GPU node; cpu only with --smoke, the "
                        "path's proof (default gpu)")
    p.add_argument("--smoke", action="store_true",
                   help="every step, tiny (docs/gpu.md gives its measured time; default: off)")
    p.add_argument("--budget", type=float, metavar="MIN",
                   help=f"minutes for everything (default {full:g}, with --smoke {smoke:g})")
    cli.add_run_options(p, "backend", backend_names=backends.NAMES)
    p.add_argument("--out", metavar="DIR", help="results folder to create (default: benchmarks/results/"
                   "<gpu>-<date>-gpu-check; with --smoke runs/gpu-check-smoke-<time>)")
    p.add_argument("--resume", metavar="DIR", help="continue an earlier check's results folder: keep its finished "
                   "steps and grid cells, run the rest (the probe and the peak again)")
    args = p.parse_args(argv)
    args.size = steps.SIZES["smoke" if args.smoke else "full"]
    args.budget = args.budget if args.budget is not None else args.size["budget_min"]
    try:
        names = cli.parse_backends(args.backend, backends.NAMES)
    except UsageError as exc:
        p.error(str(exc))
    if args.device == "cpu" and not args.smoke:
        p.error("--device cpu measures nothing worth the time: add --smoke (the path's proof)")
    if args.budget <= 0:
        p.error("--budget must be positive minutes")
    if args.resume and args.out:
        p.error("--resume writes into the folder it continues: leave out --out")
    # PyTorch first: its rows (spec and best) are the yardstick of the others.
    args.backends = sorted(names, key=lambda n: n != "pytorch")
    return args


def folder(args) -> Path:
    from benchmarks.throughput import machine_slug
    if args.resume or args.out:
        return Path(args.resume or args.out)
    if args.smoke:
        return state.REPO / "runs" / f"gpu-check-smoke-{dt.datetime.now():%Y%m%d-%H%M%S}"
    return state.REPO / "benchmarks" / "results" / f"{machine_slug()}-{dt.date.today().isoformat()}-gpu-check"


def run_steps(check: state.Check) -> None:
    """Every step in ORDER that the budget and the probe allow, recording each one left out."""
    ready = steps.probe_step(check)
    run = {"parity": steps.parity_step, "main": steps.main_step, "peak": lambda c, _: steps.peak_step(c),
           "grid": steps.grid_step, "quality": lambda c, r: quality_step.quality_step(c, r, steps.main_command)}
    for name in ORDER[1:]:
        if not ready:
            check.doc["not_run"] = [s for s in ORDER if s not in check.doc["steps"]]
            break
        if name in ("parity", "main", "quality") and check.finished(name):
            continue  # an earlier run's, passed (--resume); the probe and the peak are of this machine
        if name != "grid" and check.left() < steps.MIN_SECONDS[name]:
            if name not in check.doc["steps"]:  # else the earlier run's record says more
                check.step(name, {"status": "not run: budget", "seconds": 0})
            continue
        run[name](check, ready)
    cut = [s for s, r in check.doc["steps"].items() if "budget" in str(r.get("status"))] + \
        ["grid " + summary.cell_label(r) for r in check.doc["grid"] if "budget" in str(r.get("status"))]
    check.doc["status"] = ("no backend can run on the device" if not ready
                           else f"partial: budget ({len(cut)} stopped or not run)" if cut else "done")


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    out = folder(args)
    if args.resume:
        earlier, why = summary.load(out, args.device, args.smoke)
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
        atomic.write_text(out / ".gitignore", state.HEAVY_OUTPUTS)
    check = state.Check(args, out, earlier)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a kill ends like Ctrl-C: summary kept
    try:
        run_steps(check)
    except KeyboardInterrupt:
        check.doc["status"] = "interrupted"
        check.doc["not_run"] = [s for s in ORDER if s not in check.doc["steps"]]
    check.doc["finished"] = check.doc["runs"][-1]["finished"] = dt.datetime.now().astimezone().isoformat(
        timespec="seconds")
    check.save()
    print(summary.render(check.doc))
    print(f"written: {out}", file=sys.stderr)
    failed = [s for s, r in check.doc["steps"].items() if r.get("status") == "failed"] + \
        [r for r in check.doc["grid"] if r.get("status") == "failed"]
    if failed or not check.doc["steps"].get("probe", {}).get("ready"):
        return 1
    return 0 if check.doc["status"] == "done" else EXIT_PARTIAL


if __name__ == "__main__":
    sys.exit(main())
