"""Canonical weights <-> MXNet parameter and auxiliary-state names.

MXNet's Convolution weight is (out, in, kh, kw) and its Deconvolution weight (in, out, kh, kw):
the canonical (PyTorch) layouts, so the conversion is a key map only. BN's running statistics are
MXNet auxiliary states (`moving_mean`, `moving_var`); their names never collide with arguments'.
"""
from __future__ import annotations

import numpy as np

from backends.base import gather, renamed_key

_RENAMED = {"running_mean": "moving_mean", "running_var": "moving_var"}  # the rest keep their names


def framework_key(canonical: str) -> tuple[str, str]:
    """'G.bn0.running_var' -> ('G', 'bn0_moving_var')."""
    return renamed_key(canonical, _RENAMED, "{layer}_{tensor}")


def to_framework_layout(array: np.ndarray) -> np.ndarray:
    return np.asarray(array, dtype=np.float32)


def to_canonical_layout(array) -> np.ndarray:
    """A float32 host copy of an NDArray."""
    return array.asnumpy().astype(np.float32, copy=True)


def layer_name(mxnet_name: str) -> str:
    """'bn0_gamma' -> 'bn0': the layer part of an MXNet parameter name."""
    return mxnet_name.split("_", 1)[0]


def to_canonical(nets: dict[str, dict], keys) -> dict[str, np.ndarray]:
    """{net: {MXNet name: NDArray}} (arguments and auxiliary states) -> canonical arrays."""
    return gather(nets, keys, framework_key, to_canonical_layout)


def from_canonical(nets: dict[str, dict], weights: dict[str, np.ndarray]) -> None:
    """Writes canonical arrays into {net: {MXNet name: NDArray}} in place."""
    for key, value in weights.items():
        net, name = framework_key(key)
        target = nets[net][name]
        if target.shape != np.shape(value):
            raise ValueError(f"{key}: shape {np.shape(value)}, MXNet's {name} is {target.shape}")
        target[:] = to_framework_layout(value)
