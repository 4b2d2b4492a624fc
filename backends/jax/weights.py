"""Canonical weights <-> Flax NNX variables.

Keys: conv/deconv `weight` is the layer's `kernel`; BN gamma/beta/running_mean/running_var are
scale/bias/mean/var. Layout: a kernel is (kh, kw, a, b) where the canonical is (b, a, kh, kw):
conv HWIO against PyTorch's OIHW, and the transposed conv with transpose_kernel=True
(models.py) (kh, kw, out, in) against PyTorch's (in, out, kh, kw), so one transpose serves both
(no flip: transpose_kernel flips inside the op)."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from backends.base import gather, renamed_key
from backends.jax import models

_RENAMED = {"weight": "kernel", "gamma": "scale", "beta": "bias",
            "running_mean": "mean", "running_var": "var"}
_TO_FLAX, _TO_CANONICAL = (2, 3, 1, 0), (3, 2, 0, 1)


def framework_key(canonical: str) -> tuple[str, str]:
    """'G.bn0.gamma' -> ('G', 'bn0.scale')."""
    return renamed_key(canonical, _RENAMED)


def to_framework_layout(array: np.ndarray) -> jnp.ndarray:
    array = np.asarray(array, dtype=np.float32)
    return jnp.asarray(array.transpose(_TO_FLAX) if array.ndim == 4 else array)


def to_canonical_layout(array) -> np.ndarray:
    array = np.asarray(array, dtype=np.float32)
    return np.ascontiguousarray(array.transpose(_TO_CANONICAL) if array.ndim == 4 else array).copy()


def arrays(nets: dict[str, models.Net]) -> dict[str, dict[str, object]]:
    """{net: {framework name: array}} of the modules' variables."""
    return {name: {k: v[...] for k, v in models.variables(net).items()} for name, net in nets.items()}


def to_canonical(nets: dict[str, models.Net], keys) -> dict[str, np.ndarray]:
    return gather(arrays(nets), keys, framework_key, to_canonical_layout)


def from_canonical(nets: dict[str, models.Net], weights: dict[str, np.ndarray]) -> None:
    variables = {name: models.variables(net) for name, net in nets.items()}
    for key, value in weights.items():
        net, name = framework_key(key)
        variables[net][name][...] = to_framework_layout(value)
