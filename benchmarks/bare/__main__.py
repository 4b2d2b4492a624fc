"""One framework's bare reference loop (the spec's step timed without the harness) in this
process, its result written atomically as JSON.

Run it in a fresh process per measurement, as run_all.py runs each backend: a framework's
thread settings are fixed when it is imported."""
from __future__ import annotations

import importlib
import os
import sys

import backends
from common import atomic, cli
from common.errors import DataError
from common.options import UsageError


def parse_args(argv):
    p = cli.entry_parser("python -m benchmarks.bare", __doc__,
                         epilog="example: python -m benchmarks.bare --backend pytorch --iters 20 --out bare.json "
                                "(benchmarks.throughput --bare runs it for every cell)")
    p.add_argument("--backend", required=True, metavar="NAME",
                   help=f"the one backend whose bare loop runs: {', '.join(backends.NAMES)} (required)")
    cli.add_run_options(p, "preset", "batch_size", "iters", "threads",
                        preset=("mnist32", "mnist32"), iters=(20, "20, the first step included"))
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"],
                   help="where the loop runs (default cpu)")
    p.add_argument("--init-weights", metavar="NPZ", help="canonical .npz to start from (default: shared init, seed 0)")
    p.add_argument("--out", required=True, metavar="FILE", help="result JSON file to write (required)")
    args = p.parse_args(argv)
    try:
        names = cli.parse_backends(args.backend, backends.NAMES)
    except UsageError as exc:
        p.error(str(exc))
    if len(names) != 1:
        p.error(f"--backend {args.backend}: one bare loop per process; pass one of {', '.join(backends.NAMES)}")
    args.backend = names[0]
    problem = cli.bounds_problem(args, ("batch_size", "iters", "threads"))
    if problem:
        p.error(problem)
    return args


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    reason = backends.unavailable_reason(args.backend)
    if reason:
        print(f"benchmarks.bare: {args.backend}: {reason}", file=sys.stderr)
        return 1
    # As run_all.py sets them for its workers, before numpy or any framework is imported: MXNet
    # and numpy's BLAS (Chainer) read OMP_NUM_THREADS once, at import.
    if args.threads:
        os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from common import canonical
    from common.spec import model_spec
    try:
        init = (canonical.load(args.init_weights, model_spec(args.preset))[0]
                if args.init_weights else None)
        result = importlib.import_module(f"benchmarks.bare.{args.backend}").run(
            args.preset, args.batch_size, args.iters, args.threads, args.device, init)
    except (DataError, RuntimeError) as exc:  # a bad weight file, no usable GPU
        print(f"benchmarks.bare: {args.backend}: {exc}", file=sys.stderr)
        return 1
    atomic.write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
