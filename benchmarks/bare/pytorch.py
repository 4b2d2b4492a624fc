"""Bare PyTorch loop: loss.backward() and optimizer.step(), nothing around them.

As in the backend, D's parameters have requires_grad off during G's backward: the same
arithmetic, so a time difference is the harness's alone (not work one side skips)."""
from __future__ import annotations

from benchmarks.bare import loop
from common import sysinfo
from common.spec import model_spec


def run(preset: str, batch: int, iters: int, threads: int, device: str = "cpu",
        init_weights: dict | None = None) -> dict:
    import torch
    import torch.nn.functional as F

    from backends.pytorch import models, weights

    loop.check_sizes(batch, iters)
    spec = model_spec(preset)
    if threads > 0:  # 0: leave torch's own setting
        torch.set_num_threads(threads)
    on_gpu = device == "gpu"
    if on_gpu:  # untested here (no GPU): the backend's settings, full float32
        if not torch.cuda.is_available():
            raise RuntimeError(f"--device gpu: torch {torch.__version__} sees no CUDA device")
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    dev = torch.device("cuda", 0) if on_gpu else torch.device("cpu")

    G, D = models.Generator(spec), models.Discriminator(spec)
    weights.from_canonical({"G": G, "D": D}, loop.starting_weights(spec, init_weights))
    G.to(dev).train()
    D.to(dev).train()
    a = spec.adam
    opt_G, opt_D = (torch.optim.Adam(net.parameters(), lr=a.lr, betas=(a.beta1, a.beta2),
                                     eps=a.eps, weight_decay=a.weight_decay) for net in (G, D))
    real, z = (torch.from_numpy(x).to(dev) for x in loop.fixed_batch(spec, batch))
    real_t = torch.full((batch,), spec.loss.real_label, device=dev)
    fake_t = torch.full((batch,), spec.loss.fake_label, device=dev)
    bce = F.binary_cross_entropy_with_logits  # batch mean

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

    def finish(losses):
        if on_gpu:
            torch.cuda.synchronize(dev)
        return [float(loss) for loss in losses]

    result = loop.timed_steps(step, finish, iters)
    peak = ({"bytes": int(torch.cuda.max_memory_allocated(dev)), "kind": "device-allocator"}
            if on_gpu else {"bytes": sysinfo.peak_rss_bytes(), "kind": "rss"})
    return dict(result, peak_memory=peak, framework_version=torch.__version__,
                threads={"torch.get_num_threads": torch.get_num_threads(),
                         "torch.get_num_interop_threads": torch.get_num_interop_threads()})
