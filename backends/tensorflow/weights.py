"""Canonical weights <-> Keras variables: the one key map and the one layout conversion, used by
import, export and the gradient export alike.

Kernels: canonical conv (out, in, kh, kw) and deconv (in, out, kh, kw) are Keras's (kh, kw, in,
out) and (kh, kw, out, in): the same axis permutation for both, no kernel flip (the forward
parity test against the oracle decides that, not this comment). BN: gamma/beta keep their
names, running_mean/var are Keras's moving_mean/variance.
"""
from __future__ import annotations

import numpy as np

from backends.base import renamed_key

_KERAS_NAMES = {"weight": "kernel", "gamma": "gamma", "beta": "beta",
                "running_mean": "moving_mean", "running_var": "moving_variance"}
TO_KERAS = (2, 3, 1, 0)
TO_CANONICAL = tuple(int(i) for i in np.argsort(TO_KERAS))  # (3, 2, 0, 1)


def framework_key(canonical: str) -> tuple[str, str]:
    """'G.bn0.running_var' -> ('G', 'bn0.moving_variance'): net, Keras layer.attribute."""
    return renamed_key(canonical, _KERAS_NAMES)


def variable(nets: dict, key: str):
    """'G.bn0.running_var' -> G's layer 'bn0'.moving_variance (a Keras variable)."""
    net, name = framework_key(key)
    layer, attribute = name.split(".")
    return getattr(nets[net].get_layer(layer), attribute)


def to_framework_layout(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array, dtype=np.float32)
    return np.ascontiguousarray(array.transpose(TO_KERAS) if array.ndim == 4 else array)


def to_canonical_layout(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array, dtype=np.float32)
    return np.ascontiguousarray(array.transpose(TO_CANONICAL) if array.ndim == 4 else array)


def from_canonical(nets: dict, weights: dict[str, np.ndarray]) -> None:
    for key, value in weights.items():
        variable(nets, key).assign(to_framework_layout(value))


def to_canonical(nets: dict, keys) -> dict[str, np.ndarray]:
    return {key: to_canonical_layout(variable(nets, key).numpy()) for key in keys}
