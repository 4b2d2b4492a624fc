"""Canonical weights <-> Chainer links. Chainer's layouts are PyTorch's (conv W (out, in, kh, kw),
deconv W (in, out, kh, kw); the forward parity tests prove it), so the conversion is a key map:
weight is W, BN running statistics are the persistents avg_mean/avg_var (the persistent N,
used only by BN's fine-tuning mode, is not part of the format)."""
from __future__ import annotations

import numpy as np

from backends.base import renamed_key
from backends.compat import prepare_chainer

chainer = prepare_chainer()

_TENSOR_NAMES = {"weight": "W", "gamma": "gamma", "beta": "beta", "running_mean": "avg_mean",
                 "running_var": "avg_var"}
_to_numpy = chainer.backend.CpuDevice().send


def framework_key(canonical: str) -> tuple[str, str]:
    """'G.bn0.running_mean' -> ('G', 'bn0.avg_mean'): net, link.attribute."""
    return renamed_key(canonical, _TENSOR_NAMES)


def _attribute(nets: dict, key: str):
    """The link's Parameter (weights, gamma, beta) or persistent array (running statistics)."""
    net, name = framework_key(key)
    layer, attribute = name.split(".")
    return getattr(getattr(nets[net], layer), attribute)


def _array(value):
    return value.array if isinstance(value, chainer.Variable) else value


def to_canonical_layout(array) -> np.ndarray:
    """A float32 host copy of a numpy or CuPy array (the layout is the canonical one already)."""
    return _to_numpy(array).astype(np.float32, copy=True)


def to_framework_layout(array: np.ndarray) -> np.ndarray:
    return np.asarray(array, np.float32)


def trainable_parameters(nets: dict, keys) -> dict:
    """{canonical key: chainer.Parameter} for the trainable tensors among keys (running
    statistics are persistents, not parameters)."""
    params = {key: _attribute(nets, key) for key in keys}
    return {key: p for key, p in params.items() if isinstance(p, chainer.Parameter)}


def to_canonical(nets: dict, keys) -> dict[str, np.ndarray]:
    return {key: to_canonical_layout(_array(_attribute(nets, key))) for key in keys}


def from_canonical(nets: dict, weights: dict[str, np.ndarray]) -> None:
    """Copies in place, so the links and the optimizer state keep their arrays."""
    for key, value in weights.items():
        device = nets[framework_key(key)[0]].device
        _array(_attribute(nets, key))[...] = device.send(to_framework_layout(value))
