"""Bare PyTorch loop: loss.backward() and optimizer.step(), nothing around them.

As in the backend, D's parameters have requires_grad off during G's backward: the same
arithmetic, so a time difference is the harness's alone (not work one side skips)."""
from __future__ import annotations

from benchmarks.bare import loop
from common.spec import model_spec


def run(preset: str, batch: int, iters: int, threads: int, device: str = "cpu",
        init_weights: dict | None = None) -> dict:
    import torch

    from backends.pytorch import models, runtime, training, weights

    loop.check_sizes(batch, iters)
    spec = model_spec(preset)
    runtime.set_threads(threads)  # 0: leave torch's own setting
    dev = runtime.select_device(device)  # the backend's device settings (full float32 on CUDA)

    G, D = models.build(spec)
    weights.from_canonical({"G": G, "D": D}, loop.starting_weights(spec, init_weights))
    G.to(dev).train()
    D.to(dev).train()
    opt_G, opt_D = (training.adam(net, spec.adam) for net in (G, D))
    real, z = (torch.from_numpy(x).to(dev) for x in loop.fixed_batch(spec, batch))
    real_t = torch.full((batch,), spec.loss.real_label, device=dev)
    fake_t = torch.full((batch,), spec.loss.fake_label, device=dev)
    bce = training.bce_with_logits  # batch mean

    def step():
        fake = G(z)
        opt_D.zero_grad()
        loss_d = bce(D(real), real_t) + bce(D(fake.detach()), fake_t)
        loss_d.backward()
        opt_D.step()

        opt_G.zero_grad()
        D.requires_grad_(False)
        loss_g = bce(D(fake), real_t)
        loss_g.backward()
        D.requires_grad_(True)
        opt_G.step()
        return loss_d.detach(), loss_g.detach()

    result = loop.timed_steps(step, loop.synced_floats(runtime, dev), iters)
    return loop.report(result, runtime, dev)


if __name__ == "__main__":
    import benchmarks
    raise SystemExit(benchmarks.internal_entry("benchmarks.bare.pytorch", "PyTorch's bare reference loop", "benchmarks.bare -h"))
