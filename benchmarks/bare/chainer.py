"""Bare Chainer loop: plain Chain forwards, cleargrads, backward and optimizer.update; no
Trainer, Updater or Iterator.

G's gradients come from chainer.grad (set_grad=True), as in the backend: loss_g.backward() would
also compute D's weight gradients, which nothing uses, and the loop would then do more work than
the harness's. Threads: numpy's BLAS pools, which read OMP_NUM_THREADS when numpy is imported
(`python -m benchmarks.bare` sets it first); threadpoolctl, where installed, sets them here."""
from __future__ import annotations

import contextlib

from benchmarks.bare import loop
from common import sysinfo
from common.spec import model_spec


def run(preset: str, batch: int, iters: int, threads: int, device: str = "cpu",
        init_weights: dict | None = None) -> dict:
    from backends.compat import prepare_chainer
    chainer = prepare_chainer()
    import numpy as np

    from backends.chainer import backend, models, training, weights

    loop.check_sizes(batch, iters)
    spec = model_spec(preset)
    with contextlib.ExitStack() as stack:
        if threads > 0:
            with contextlib.suppress(ImportError):
                import threadpoolctl
                stack.enter_context(threadpoolctl.threadpool_limits(threads))
        if device == "gpu":  # untested here (no GPU): CuPy, as the backend
            reason = backend._gpu_unavailable_reason()
            if reason:
                raise RuntimeError(f"--device gpu: chainer cannot use a GPU: {reason}")
            chainer.config.autotune = True
        dev = chainer.get_device("@cupy:0" if device == "gpu" else "@numpy")
        dev.use()

        rng = np.random.RandomState(0)  # its draws are overwritten by the canonical weights
        G, D = models.Generator(spec, rng), models.Discriminator(spec, rng)
        weights.from_canonical({"G": G, "D": D}, loop.starting_weights(spec, init_weights))
        G.to_device(dev)
        D.to_device(dev)
        a = spec.adam
        opt_G, opt_D = (chainer.optimizers.Adam(alpha=a.lr, beta1=a.beta1, beta2=a.beta2, eps=a.eps,
                                                weight_decay_rate=a.weight_decay) for _ in "GD")
        opt_G.setup(G)
        opt_D.setup(D)
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

        def finish(losses):  # a fetch from the GPU is its sync
            return [float(weights.to_numpy(loss)) for loss in losses]

        with chainer.using_config("train", True):
            result = loop.timed_steps(step, finish, iters)
        thread_info = backend._blas_threads()
    on_gpu = dev.xp is not np
    peak = ({"bytes": int(dev.xp.get_default_memory_pool().total_bytes()), "kind": "device-allocator"}
            if on_gpu else {"bytes": sysinfo.peak_rss_bytes(), "kind": "rss"})
    return dict(result, peak_memory=peak, framework_version=chainer.__version__, threads=thread_info)
