"""SPEC.md's iteration in PyTorch, and the Adam and loss it uses. The loop around it is
BackendBase.fetching_loop (losses fetched every `fetch_every` steps).

During the G step D's parameters have requires_grad off: loss_G still flows through D into G,
but D's weight gradients (discarded by the reference loop) are never computed."""
from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from common.spec import AdamSpec

def bce_with_logits(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy on logits, batch mean: the spec's loss (nn.BCEWithLogitsLoss's function)."""
    return nn.functional.binary_cross_entropy_with_logits(logits, target)


def adam(net: nn.Module, spec: AdamSpec) -> torch.optim.Adam:
    """torch.optim.Adam over net's parameters with the spec's values (PyTorch's convention)."""
    return torch.optim.Adam(net.parameters(), lr=spec.lr, betas=(spec.beta1, spec.beta2), eps=spec.eps,
                            weight_decay=spec.weight_decay)


def spec_iteration(G, D, opt_G, opt_D, real, z, real_t, fake_t, frozen_D=None,
                   autocast=contextlib.nullcontext):
    """One iteration on device tensors; returns the detached losses without a host sync.

    G and D are the modules whose passes train (DDP wrappers when data parallel); frozen_D is
    the G step's D (default D), whose parameters are frozen during that step."""
    frozen_D = D if frozen_D is None else frozen_D
    G.train()
    D.train()
    with autocast():
        fake = G(z)  # once per iteration: both steps use it

        # D step: real and fake in separate forward passes (two sets of batch statistics).
        opt_D.zero_grad(set_to_none=True)
        loss_d = (bce_with_logits(D(real).float(), real_t)
                  + bce_with_logits(D(fake.detach()).float(), fake_t))
    loss_d.backward()
    opt_D.step()

    # G step through the updated D; D's own weight gradients are not needed.
    opt_G.zero_grad(set_to_none=True)
    frozen_D.requires_grad_(False)
    try:
        with autocast():
            loss_g = bce_with_logits(frozen_D(fake).float(), real_t)
        loss_g.backward()
    finally:
        frozen_D.requires_grad_(True)
    opt_G.step()
    return loss_d.detach(), loss_g.detach()


def losses_to_numpy(pending: list[tuple[torch.Tensor, torch.Tensor]]) -> np.ndarray:
    return torch.stack([torch.stack(p) for p in pending]).cpu().numpy()  # the sync
