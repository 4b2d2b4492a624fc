"""Bare Chainer loop: plain Chain forwards, cleargrads, backward and optimizer.update; no
Trainer, Updater or Iterator.

G's gradients come from chainer.grad (set_grad=True), as in the backend: loss_g.backward() would
also compute D's weight gradients, which nothing uses, and the loop would then do more work than
the harness's. Threads: numpy's BLAS pools, which read OMP_NUM_THREADS when numpy is imported
(`python -m benchmarks.bare` sets it first); threadpoolctl, where installed, sets them here."""
from __future__ import annotations

from benchmarks.bare import loop
from common.spec import model_spec


def run(preset: str, batch: int, iters: int, threads: int, device: str = "cpu",
        init_weights: dict | None = None) -> dict:
    import numpy as np

    from backends.chainer import models, runtime, training, weights
    chainer = runtime.chainer

    loop.check_sizes(batch, iters)
    spec = model_spec(preset)
    runtime.set_threads(threads)  # 0: leave the BLAS pools as they are
    dev = runtime.select_device(device)  # the GPU path is untested here (no GPU): CuPy

    rng = np.random.RandomState(0)  # its draws are overwritten by the canonical weights
    G, D = models.build(spec, rng)
    weights.from_canonical({"G": G, "D": D}, loop.starting_weights(spec, init_weights))
    G.to_device(dev)
    D.to_device(dev)
    opt_G, opt_D = training.adam(G, spec.adam), training.adam(D, spec.adam)
    real, z = (dev.send(x) for x in loop.fixed_batch(spec, batch))
    bce, labels = training.bce_with_logits, spec.loss

    def step():
        fake = G(z)
        loss_d = bce(D(real), labels.real_label) + bce(D(fake.array), labels.fake_label)
        D.cleargrads()
        loss_d.backward()
        opt_D.update()

        loss_g = bce(D(fake), labels.real_label)  # the updated D
        chainer.grad([loss_g], list(G.params()), set_grad=True)
        opt_G.update()
        return loss_d.array, loss_g.array

    with chainer.using_config("train", True):
        result = loop.timed_steps(step, loop.synced_floats(runtime, dev), iters)
    return loop.report(result, runtime, dev)


if __name__ == "__main__":
    import benchmarks
    raise SystemExit(benchmarks.internal_entry("benchmarks.bare.chainer", "Chainer's bare reference loop", "benchmarks.bare -h"))
