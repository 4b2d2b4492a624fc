#!/usr/bin/env python3
"""Train the quality evaluator's feature network into the .npz file named by --out.

    python -m tools.train_feature_net --out /tmp/mnist_lenet.npz

Nothing committed is written unless named: only --out common/metrics/mnist_lenet.npz replaces the
committed weights, and that is a deliberate, reviewed step, together with the new sha256 in
common/metrics/feature_net.py, as every quality number changes with them.

Uses torch (training only; evaluation is numpy), CPU, a fixed seed, deterministic kernels and one
thread, on the classifier-training part of the 5k real digits (common.metrics.evaluate.
split_indices), and reports accuracy on the held-out part. Full MNIST is not used even when
present, so every machine trains on the same digits in the same order. It reproduces the
network's accuracy, not its bytes: on one machine a run repeats its own bytes, but another CPU
gives other weights (torch picks its CPU kernels by instruction set, which orders float32 sums
differently, and 20 epochs of Adam carry a last-bit difference into another network), within
the accuracy bound docs/quality.md measures ("The feature network"). Prints the held-out
accuracy and the sha256 to put into common/metrics/feature_net.py; exit 1 when the accuracy is
under --min-accuracy.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import atomic  # noqa: E402
from common.data.download import file_digest  # noqa: E402
from common.metrics import evaluate, feature_net  # noqa: E402

SEED, EPOCHS, BATCH, LR = 0, 20, 64, 1e-3
MIN_ACCURACY = 0.95


def build(torch):
    nn = torch.nn
    (_, _, c1), (_, _, c2), (_, _, f1), (_, _, f2) = feature_net.LAYERS
    return nn.Sequential(
        nn.Conv2d(c1[1], c1[0], c1[2]), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c2[1], c2[0], c2[2]), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(f1[1], f1[0]), nn.ReLU(), nn.Linear(f2[1], f2[0]))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    paragraphs = __doc__.split("\n\n")
    p = argparse.ArgumentParser(prog="python -m tools.train_feature_net", description=paragraphs[0],
                                epilog="\n\n".join(paragraphs[1:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, metavar="FILE.npz",
                   help="where the weights go (required; the committed "
                        "common/metrics/mnist_lenet.npz only when named here)")
    p.add_argument("--epochs", type=int, default=EPOCHS, metavar="N",
                   help=f"passes over the 3,000 training digits (default {EPOCHS}, what the "
                        "committed weights had; fewer for a quick try)")
    p.add_argument("--seed", type=int, default=SEED, metavar="S",
                   help=f"the weights' and the data order's seed (default {SEED}, the committed "
                        "weights'; others measure the spread of the accuracy)")
    p.add_argument("--min-accuracy", type=float, default=MIN_ACCURACY, metavar="A",
                   help=f"exit 1 under this held-out accuracy (default {MIN_ACCURACY})")
    args = p.parse_args(argv)
    if args.epochs < 1:
        p.error(f"--epochs {args.epochs}: train at least 1 epoch")
    if args.out.suffix != ".npz":
        p.error(f"--out {args.out}: name a .npz file, e.g. --out /tmp/mnist_lenet.npz")
    if not args.out.parent.is_dir():
        p.error(f"--out {args.out}: folder {args.out.parent} does not exist; create it first")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # one reduction order, whatever the CPU count
    images, labels = evaluate.mnist_5k_digits()
    train_idx, held_out = evaluate.split_indices(len(images))
    x = torch.from_numpy(images[train_idx])
    y = torch.from_numpy(labels[train_idx])
    model = build(torch)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    rng = np.random.default_rng(args.seed)
    for epoch in range(args.epochs):
        order = torch.from_numpy(rng.permutation(len(x)))
        # Small random shifts (up to 2 px): 3,000 digits are few, and generated digits are
        # rarely centred exactly like MNIST's.
        for i in range(0, len(x), BATCH):
            idx = order[i:i + BATCH]
            dy, dx = (int(v) for v in rng.integers(-2, 3, 2))
            xb = torch.roll(x[idx], shifts=(dy, dx), dims=(2, 3))
            loss = torch.nn.functional.cross_entropy(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"epoch {epoch + 1}: loss {loss.item():.4f}")
    names = [name for name, _, _ in feature_net.LAYERS]
    modules = [m for m in model if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    params = {}
    for name, module in zip(names, modules):
        params[f"{name}.weight"] = module.weight.detach().numpy().astype(np.float32)
        params[f"{name}.bias"] = module.bias.detach().numpy().astype(np.float32)
    with atomic.atomic_path(args.out) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **params)
    digest = file_digest(args.out, "sha256")
    net = feature_net.FeatureNet.load(args.out, sha256=digest)
    accuracy = evaluate.held_out_accuracy(net)  # the one figure the report and docs quote
    print(f"held-out accuracy (numpy forward, {len(held_out)} digits): {accuracy:.4f}")
    print(f"sha256: {digest}" + (" (the committed bytes)" if digest == feature_net.WEIGHTS_SHA256
                                 else f" (committed: {feature_net.WEIGHTS_SHA256})"))
    print(f"wrote {args.out}")
    return 0 if accuracy >= args.min_accuracy else 1


if __name__ == "__main__":
    sys.exit(main())
