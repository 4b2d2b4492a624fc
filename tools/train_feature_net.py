#!/usr/bin/env python3
"""Train the quality evaluator's feature network and write common/metrics/mnist_lenet.npz.

    python -m tools.train_feature_net

It overwrites the committed weights: commit the result only with the new sha256 in
common/metrics/feature_net.py, as every quality number changes with them.

Uses torch (training only; evaluation is numpy), CPU, a fixed seed and deterministic kernels,
on the classifier-training part of the 5k real digits (common.metrics.evaluate.split_indices),
and reports accuracy on the held-out part. Full MNIST is not used even when present, so the
committed network and the held-out reference are the same on every machine. Prints the sha256 to
put into common/metrics/feature_net.py.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import atomic  # noqa: E402
from common.metrics import evaluate, feature_net  # noqa: E402

SEED, EPOCHS, BATCH, LR = 0, 20, 64, 1e-3


def build(torch):
    nn = torch.nn
    (_, _, c1), (_, _, c2), (_, _, f1), (_, _, f2) = feature_net.LAYERS
    return nn.Sequential(
        nn.Conv2d(c1[1], c1[0], c1[2]), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c2[1], c2[0], c2[2]), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(f1[1], f1[0]), nn.ReLU(), nn.Linear(f2[1], f2[0]))


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="python -m tools.train_feature_net", description=__doc__.split("\n\n")[0],
                            epilog=__doc__.split("\n\n", 2)[2],
                            formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    import torch
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # bit-repeatable on any CPU count
    images, labels = evaluate.mnist_5k_digits()
    train_idx, held_out = evaluate.split_indices(len(images))
    x = torch.from_numpy(images[train_idx])
    y = torch.from_numpy(labels[train_idx])
    model = build(torch)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    rng = np.random.default_rng(SEED)
    for epoch in range(EPOCHS):
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
    with atomic.atomic_path(feature_net.WEIGHTS_PATH) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **params)
    digest = feature_net.sha256_file(feature_net.WEIGHTS_PATH)
    net = feature_net.FeatureNet.load(sha256=digest)
    accuracy = evaluate.held_out_accuracy(net)  # the one figure the report and docs quote
    print(f"held-out accuracy (numpy forward, {len(held_out)} digits): {accuracy:.4f}")
    print(f"sha256: {digest}")
    return 0 if accuracy >= 0.95 else 1


if __name__ == "__main__":
    sys.exit(main())
