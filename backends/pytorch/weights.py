"""Canonical weights <-> PyTorch state dicts. The canonical layout *is* PyTorch's, so the
conversion is a key map only (BN weight/bias are gamma/beta; num_batches_tracked is dropped)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

_BN_KEYS = {"gamma": "weight", "beta": "bias", "running_mean": "running_mean",
            "running_var": "running_var"}


def torch_key(canonical: str) -> tuple[str, str]:
    """'G.bn0.gamma' -> ('G', 'net.bn0.weight')."""
    net, layer, tensor = canonical.split(".")
    return net, f"net.{layer}.{_BN_KEYS.get(tensor, tensor)}"


def to_canonical(nets: dict[str, nn.Module], keys) -> dict[str, np.ndarray]:
    states = {name: m.state_dict() for name, m in nets.items()}
    out = {}
    for key in keys:
        net, tkey = torch_key(key)
        out[key] = states[net][tkey].detach().to("cpu", torch.float32).contiguous().numpy().copy()
    return out


def grads_to_canonical(named_grads: dict[str, dict[str, torch.Tensor]], keys) -> dict[str, np.ndarray]:
    """{net: {torch parameter name: gradient}} -> gradients under their canonical keys."""
    out = {}
    for key in keys:
        net, tkey = torch_key(key)
        if tkey in named_grads[net]:  # running statistics have no gradient
            out[key] = named_grads[net][tkey].detach().to("cpu", torch.float32).numpy().copy()
    return out


def from_canonical(nets: dict[str, nn.Module], weights: dict[str, np.ndarray]) -> None:
    with torch.no_grad():
        states = {name: m.state_dict() for name, m in nets.items()}
        for key, value in weights.items():
            net, tkey = torch_key(key)
            target = states[net][tkey]
            target.copy_(torch.from_numpy(np.ascontiguousarray(value)).to(target.dtype))
