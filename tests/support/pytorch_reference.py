"""PyTorch's losses for the CLI parity check, in a fresh process (tests/e2e/test_cli.py):

    python -m tests.support.pytorch_reference pytorch|folded float32|float64|ensemble ITERS THREADS [REPLICAS [SEED]]

prints one JSON line: ITERS pairs (loss_D, loss_G) of the PyTorch backend on mnist-5k, batch 64,
seed SEED (0 by default: the tests' runs) for the data order, the noise and the shared initial
weights, exactly as `run_all.py --shared-init --seed SEED` feeds it. `ensemble` prints a list of
such float32 runs, one per ENSEMBLE variant: PyTorch's own float32 arithmetic taken several valid
ways (thread count, memory format, initial weights moved by one ulp), whose spread around the
float64 run is the parity rule's float32 noise (tests/support/tolerances.py).

"folded" runs torch.optim.Adam with eps_t = eps/sqrt(1-beta2^t) at step t: then PyTorch's
p -= lr·(m/c1)/(sqrt(v/c2) + eps_t) equals lr·sqrt(c2)/c1 · m/(sqrt(v) + eps), the folded
update, exactly (tests/support/oracle.py adam_update). float64 converts the backend's modules and sets
its `dtype`, which its inputs and labels follow.

REPLICAS > 1 (tests/e2e/test_parallel.py) is what N data-parallel replicas with per-replica BN
compute, on one device: G, and D's passes, run on each of the N slices of the batch separately
(BN statistics per slice, "ghost batch norm"), and each loss is the mean of the slices' batch
means, so its gradient is the mean of the slices' gradients, as DDP averages them. Running
statistics are not modelled (training-mode losses never read them).
"""
from __future__ import annotations

import json
import sys

import numpy as np


USAGE = "pytorch|folded float32|float64|ensemble ITERS THREADS [REPLICAS [SEED]]"

# (threads: 1 or THREADS, channels_last, nudge): every combination. Each is the spec in float32 by
# PyTorch, through other oneDNN kernels (one thread, NHWC) or from weights one rounding away
# (nudge: `nudged`'s rng); (THREADS, False, 0) is the float32 reference run itself.
ENSEMBLE = tuple((one, channels_last, nudge) for one in (False, True)
                 for channels_last in (False, True) for nudge in (0, 1, 2))


def losses(convention: str, float64: bool, iters: int, threads: int, replicas: int = 1,
           seed: int = 0, nudge: int = 0, channels_last: bool = False) -> list[list[float]]:
    import torch

    import backends
    from backends.base import BackendOptions
    from common import data
    from common.data import noise
    from common import canonical
    from common.spec import model_spec
    spec = model_spec("mnist32")
    images = data.load_dataset("mnist-5k", spec.preset).images
    plan = noise.BatchPlan(len(images), 64, seed=seed)
    b = backends.load("pytorch")(spec, BackendOptions(device="cpu", threads=threads,
                                                       channels_last=channels_last))
    weights = canonical.draw_initial_weights(spec, seed)
    b.load_weights(nudged(weights, nudge) if nudge else weights)
    if float64:
        b.G.double(), b.D.double()
        b.dtype = torch.float64  # what the backend's tensor() and targets() make
    out = []
    for t, (real, z) in enumerate(noise.iterate_batches(images, plan, spec.preset.nz, 0, iters), 1):
        if convention == "folded":
            for opt in (b.opt_D, b.opt_G):
                for group in opt.param_groups:
                    group["eps"] = spec.adam.eps / np.sqrt(1 - spec.adam.beta2 ** t)
        out.append(list(b.train_step(real, z) if replicas == 1 else
                        _ghost_step(b, np.split(real, replicas), np.split(z, replicas))))
    return out


def nudged(weights: dict[str, np.ndarray], member: int) -> dict[str, np.ndarray]:
    """The weights with every nonzero float32 value moved by one ulp up or down at random (rng
    `member`): a perturbation the size of one float32 rounding (ENSEMBLE)."""
    rng = np.random.default_rng(member)
    out = {}
    for key, w in weights.items():
        up = rng.random(w.shape) < 0.5
        moved = np.where(up, np.nextafter(w, np.float32(np.inf)), np.nextafter(w, np.float32(-np.inf)))
        out[key] = np.where(w == 0, w, moved).astype(np.float32)  # zeros (beta) stay: no denormals
    return out


def _ghost_step(b, reals, zs) -> tuple[float, float]:
    """SPEC.md's iteration with each slice normalised by its own BN statistics (see above)."""
    from backends.pytorch.training import bce_with_logits as bce
    n = len(reals)
    real_t, fake_t = b.targets(reals[0].shape[0])
    b.G.train(), b.D.train()
    fakes = [b.G(b.tensor(z)) for z in zs]
    b.opt_D.zero_grad(set_to_none=True)
    loss_d = sum(bce(b.D(b.tensor(r)), real_t) + bce(b.D(f.detach()), fake_t)
                 for r, f in zip(reals, fakes)) / n
    loss_d.backward()
    b.opt_D.step()
    b.opt_G.zero_grad(set_to_none=True)
    b.D.requires_grad_(False)
    loss_g = sum(bce(b.D(f), real_t) for f in fakes) / n
    loss_g.backward()
    b.D.requires_grad_(True)
    b.opt_G.step()
    return float(loss_d.detach()), float(loss_g.detach())


INTERNAL = (f"python -m tests.support.pytorch_reference {USAGE}: internal, the PyTorch reference "
            "losses of the parity tests; run python -m pytest tests/e2e/test_cli.py")

if __name__ == "__main__":
    if sys.argv[1:] in (["-h"], ["--help"]):
        print(INTERNAL)
        sys.exit(0)
    if len(sys.argv) < 5:
        sys.exit(INTERNAL)
    convention, precision, iters, threads = sys.argv[1:5]
    replicas = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    seed = int(sys.argv[6]) if len(sys.argv) > 6 else 0
    if convention not in ("pytorch", "folded") or precision not in ("float32", "float64", "ensemble"):
        sys.exit(f"usage: python -m tests.support.pytorch_reference {USAGE}")
    if precision == "ensemble":
        print(json.dumps([losses(convention, False, int(iters), 1 if one else int(threads), replicas,
                                 seed, nudge, channels_last) for one, channels_last, nudge in ENSEMBLE]))
    else:
        print(json.dumps(losses(convention, precision == "float64", int(iters), int(threads), replicas, seed)))
