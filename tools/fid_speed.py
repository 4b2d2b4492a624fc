#!/usr/bin/env python3
"""Images per second of the FID Inception forward on this machine (needs the `fid` extra):

    python -m tools.fid_speed [--images 40] [--batch 10] [--threads 2]

Random 64x64 uint8 images through common.metrics.inception_torch.features, one warm-up batch
first; prints the median of three timed passes. Used to size common/metrics/fid.SAMPLE_COUNT.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.metrics import fid, inception_torch  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m tools.fid_speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=40, help="random images per timed pass (default: 40)")
    p.add_argument("--batch", type=int, default=10, help="images per forward (default: 10)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    args = p.parse_args()
    reason = fid.unavailable_reason()
    if reason:
        print(reason, file=sys.stderr)
        return 2
    import torch
    torch.set_num_threads(args.threads)
    model = inception_torch.load(str(fid.weights_path()))
    x = np.random.default_rng(0).integers(0, 256, (args.images, 3, 64, 64), dtype=np.uint8)
    inception_torch.features(model, x[:args.batch], args.batch)
    rates = []
    for _ in range(3):
        t0 = time.perf_counter()
        inception_torch.features(model, x, args.batch)
        rates.append(args.images / (time.perf_counter() - t0))
    print(f"{statistics.median(rates):.1f} images/s (passes: {', '.join(f'{r:.1f}' for r in rates)}; "
          f"{args.threads} threads, batch {args.batch})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
