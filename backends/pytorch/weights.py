"""Canonical weights <-> PyTorch state dicts. The canonical layout *is* PyTorch's, so the
conversion is a key map only (BN weight/bias are gamma/beta; num_batches_tracked is dropped)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from backends.base import gather, renamed_key

_RENAMED = {"gamma": "weight", "beta": "bias"}  # BN's; the rest keep their names


def framework_key(canonical: str) -> tuple[str, str]:
    """'G.bn0.gamma' -> ('G', 'net.bn0.weight')."""
    return renamed_key(canonical, _RENAMED, "net.{layer}.{tensor}")


def to_framework_layout(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array))


def to_canonical_layout(array: torch.Tensor) -> np.ndarray:
    return array.detach().to("cpu", torch.float32).contiguous().numpy().copy()


def to_canonical(nets: dict[str, nn.Module], keys) -> dict[str, np.ndarray]:
    return gather({name: m.state_dict() for name, m in nets.items()}, keys, framework_key,
                  to_canonical_layout)


def from_canonical(nets: dict[str, nn.Module], weights: dict[str, np.ndarray]) -> None:
    with torch.no_grad():
        states = {name: m.state_dict() for name, m in nets.items()}
        for key, value in weights.items():
            net, tkey = framework_key(key)
            target = states[net][tkey]
            target.copy_(to_framework_layout(value).to(target.dtype))
