"""Canonical weights: one `.npz` interchange format for every backend (SPEC.md).

Keys are the spec's stable layer names (`G.deconv0.weight`, `G.bn0.gamma`, ...), arrays are
float32 in PyTorch layout, and a `meta` entry (a JSON string, so loading never needs pickle)
records the preset and the format version. Each backend converts layouts in its own module.
"""
from __future__ import annotations

import io
import json
import math
import os
import zipfile

import numpy as np

from common import atomic
from common.data import noise
from common.errors import DataError
from common.spec import ModelSpec, model_spec

FORMAT_VERSION = 1
META_KEY = "meta"


class WeightsError(DataError):
    """A weight file or dict that does not match the spec."""


def draw_initial_weights(spec: ModelSpec, seed: int) -> dict[str, np.ndarray]:
    """The spec's initialisation drawn once in numpy (`--shared-init`): every backend loads it."""
    rng = noise.weights_rng(seed)
    weights = {}
    for key, shape in spec.parameter_shapes().items():
        kind = key.rsplit(".", 1)[1]
        if kind == "weight":
            w = rng.normal(0.0, spec.init_std, shape)
        elif kind == "gamma":
            w = rng.normal(spec.bn.gamma_init_mean, spec.bn.gamma_init_std, shape)
        elif kind == "running_var":
            w = np.ones(shape)
        else:  # beta, running_mean
            w = np.zeros(shape)
        weights[key] = w.astype(np.float32)
    return weights


def validate(weights: dict[str, np.ndarray], spec: ModelSpec, source: str = "weights") -> None:
    """Exactly the spec's keys with the spec's shapes; raises WeightsError naming the first fault."""
    expected = spec.parameter_shapes()
    for key, shape in expected.items():
        if key not in weights:
            raise WeightsError(f"{source}: missing key {key!r} (expected shape {shape} for preset "
                               f"{spec.preset.name})")
        value = np.asarray(weights[key])
        if value.dtype.kind != "f":
            raise WeightsError(f"{source}: {key!r} has dtype {value.dtype}, expected floating point")
        got = value.shape
        if got != shape:
            raise WeightsError(f"{source}: {key!r} has shape {got}, expected {shape} for preset "
                               f"{spec.preset.name}")
        if not np.all(np.isfinite(weights[key])):
            raise WeightsError(f"{source}: {key!r} contains non-finite values")
    extra = sorted(set(weights) - set(expected))
    if extra:
        raise WeightsError(f"{source}: unexpected keys {extra} (not in preset {spec.preset.name})")


def save(path: str | os.PathLike, weights: dict[str, np.ndarray], spec: ModelSpec) -> None:
    validate(weights, spec)
    meta = json.dumps({"preset": spec.preset.name, "format_version": FORMAT_VERSION})
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v, np.float32) for k, v in weights.items()},
             **{META_KEY: np.array(meta)})
    atomic.write_bytes(path, buf.getvalue())


def load(path: str | os.PathLike, spec: ModelSpec | None = None) -> tuple[dict[str, np.ndarray], ModelSpec]:
    """Read and validate a canonical file; the spec comes from its meta unless one is given."""
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise WeightsError(f"{name}: no such weight file")
    if not zipfile.is_zipfile(name):  # also refuses a plain .npy, which np.load would accept
        raise WeightsError(f"{name}: not a .npz weight file")
    try:
        _check_sizes(name)
        with np.load(name, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as exc:  # noqa: BLE001 - untrusted bytes: zip, header and size errors alike
        raise WeightsError(f"{name}: not a readable .npz weight file "
                           f"({type(exc).__name__}: {exc})"[:300]) from None
    meta = _read_meta(arrays.pop(META_KEY, None), name)
    file_spec = model_spec(meta["preset"])
    if spec is not None and spec.preset.name != file_spec.preset.name:
        raise WeightsError(f"{name}: weights are for preset {file_spec.preset.name}, "
                           f"the run uses {spec.preset.name}")
    spec = spec or file_spec
    validate(arrays, spec, name)
    return {k: v.astype(np.float32, copy=False) for k, v in arrays.items()}, spec


def _check_sizes(name: str) -> None:
    """Refuse a member whose .npy header declares more data than the member holds: np.load
    allocates the declared size before reading (a damaged header could ask for terabytes)."""
    with zipfile.ZipFile(name) as zf:
        for info in zf.infolist():
            with zf.open(info) as f:
                version = np.lib.format.read_magic(f)
                read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                               (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                if read_header is None:
                    raise ValueError(f"{info.filename}: .npy format version {version} not supported")
                shape, _, dtype = read_header(f)
                if math.prod(shape) * dtype.itemsize > info.file_size:
                    raise ValueError(f"{info.filename}: header declares shape {shape} of {dtype}, "
                                     f"more than its {info.file_size} bytes")


def _read_meta(raw, name: str) -> dict:
    if raw is None:
        raise WeightsError(f"{name}: missing key {META_KEY!r} (preset and format version)")
    try:
        meta = json.loads(str(raw))
        version, preset = int(meta["format_version"]), str(meta["preset"])
    except (ValueError, KeyError, TypeError, OverflowError):
        raise WeightsError(f"{name}: malformed {META_KEY!r} entry") from None
    if version > FORMAT_VERSION:
        raise WeightsError(f"{name}: weight format version {version} is newer than this "
                           f"dcgan-bench ({FORMAT_VERSION}); upgrade dcgan-bench")
    try:
        model_spec(preset)
    except ValueError as exc:
        raise WeightsError(f"{name}: {exc}") from None
    return meta
