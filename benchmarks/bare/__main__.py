"""`python -m benchmarks.bare --backend NAME ...`: one bare loop in this process, its result
written atomically as JSON (run it in a fresh process per measurement, as run_all.py runs each
backend: a framework's thread settings are fixed when it is imported)."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

import backends
from benchmarks.bare import NAMES
from common import atomic
from common.errors import DataError
from common.spec import PRESETS


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m benchmarks.bare", description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", required=True, choices=NAMES, help="the framework (required)")
    p.add_argument("--preset", default="mnist32", choices=list(PRESETS),
                   help="network preset (default mnist32)")
    p.add_argument("--batch-size", type=int, default=64, metavar="N",
                   help="images per step (default 64)")
    p.add_argument("--iters", type=int, default=20, metavar="N",
                   help="timed steps, the first included (default 20)")
    p.add_argument("--threads", type=int, default=os.cpu_count(),
                   metavar="N",
                   help="CPU threads for the framework (default: all cores; 0: the framework's own)")
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"],
                   help="where the loop runs (default cpu)")
    p.add_argument("--init-weights", metavar="NPZ", help="canonical .npz to start from (default: shared init, seed 0)")
    p.add_argument("--out", required=True, metavar="FILE", help="result JSON file to write (required)")
    args = p.parse_args(argv)
    if args.batch_size <= 0 or args.iters <= 0 or args.threads < 0:
        p.error("--batch-size and --iters must be positive, --threads non-negative")
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
