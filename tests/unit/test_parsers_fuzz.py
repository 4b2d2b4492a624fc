"""The readers of untrusted bytes, property-tested: on any input they return or raise the
module's documented error (DataError / WeightsError / ValueError, each a ValueError) with a
one-line message; never another exception, never a hang (hypothesis' deadline).

Inputs are both arbitrary bytes and damaged valid files (a valid file with bytes flipped,
cut or inserted), which reach far deeper into each parser than random bytes do."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.harness import checkpoint
from common.data import idx
from common.results import schema
from common import canonical
from common.errors import DataError
from common.spec import model_spec

FUZZ = settings(max_examples=150, deadline=2000, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

SPEC = model_spec("mnist32")


def _valid_weights() -> bytes:
    buf = io.BytesIO()
    meta = json.dumps({"preset": "mnist32", "format_version": canonical.FORMAT_VERSION})
    np.savez(buf, **canonical.draw_initial_weights(SPEC, 0), meta=np.array(meta))
    return buf.getvalue()


VALID = {
    "idx": idx.write_idx(np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)),
    "weights": _valid_weights(),
    "results": json.dumps({"schema_version": 1, "config": {"iters": 2},
                           "backends": {"pytorch": {"status": "ok"}}}).encode(),
}


@st.composite
def damaged(draw, kind: str):
    """A valid file of `kind` with up to 4 edits: byte flips, a cut, an insertion."""
    data = bytearray(VALID[kind])
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del data[at:at + draw(st.integers(1, 64))]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


def _one_line(exc: Exception) -> None:
    assert str(exc) and "\n" not in str(exc), repr(exc)


def _inputs(kind: str):
    return st.one_of(st.binary(max_size=512), damaged(kind))


@FUZZ
@given(data=_inputs("idx"))
def test_idx_parser_on_any_bytes(data):
    try:
        array = idx.parse_idx(data, name="fuzz")
    except DataError as exc:
        _one_line(exc)
    else:
        assert isinstance(array, np.ndarray) and array.size * array.itemsize <= len(data)


@FUZZ
@given(data=st.one_of(st.binary(max_size=512),
                      # idx headers that claim absurd sizes: never an allocation, a clean error
                      st.builds(lambda code, dims: bytes([0, 0, code, len(dims)])
                                + b"".join(d.to_bytes(4, "big") for d in dims),
                                st.sampled_from(sorted(idx.IDX_DTYPES)),
                                st.lists(st.integers(0, 2 ** 32 - 1), min_size=1, max_size=6))))
def test_idx_parser_on_headers_that_claim_anything(data):
    try:
        idx.parse_idx(data, name="fuzz")
    except DataError as exc:
        _one_line(exc)


@pytest.mark.slow
@FUZZ
@given(data=_inputs("weights"))
def test_weight_loader_on_any_bytes(tmp_path, data):
    path = tmp_path / "w.npz"
    path.write_bytes(data)
    try:
        loaded, spec = canonical.load(path)
    except canonical.WeightsError as exc:
        _one_line(exc)
    else:  # a damage the zip container tolerates (e.g. in a comment) must still be valid
        canonical.validate(loaded, spec)


@FUZZ
@given(data=_inputs("results"))
def test_results_reader_on_any_bytes(tmp_path, data):
    path = tmp_path / "results.json"
    path.write_bytes(data)
    try:
        results = schema.load_results(path, schema_version=1)
    except ValueError as exc:
        _one_line(exc)
    else:
        assert isinstance(results["backends"], dict) and isinstance(results["config"], dict)


@FUZZ
@given(data=st.one_of(st.binary(max_size=256), st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20).map(lambda v: json.dumps(v).encode())))
def test_checkpoint_manifest_reader_on_any_bytes(tmp_path, data):
    folder = tmp_path / "iter-000005"
    folder.mkdir(exist_ok=True)
    (folder / checkpoint.MANIFEST).write_bytes(data)
    with pytest.raises(ValueError) as info:  # CheckpointError is one too
        checkpoint.verify(folder, {"backend": "pytorch"})
    _one_line(info.value)


def test_results_reader_refuses_deep_nesting_cleanly(tmp_path):
    path = tmp_path / "results.json"
    path.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(ValueError, match="nested too deeply"):
        schema.load_results(path, schema_version=None)


def test_weight_loader_refuses_a_header_that_declares_more_than_the_file_holds(tmp_path):
    """np.load would allocate the declared 4 TB before reading; the loader checks first."""
    import zipfile
    npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(npy, {"descr": "<f4", "fortran_order": False,
                                               "shape": (10 ** 6, 10 ** 6)})
    npy.write(b"\0" * 64)
    path = tmp_path / "w.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("G.deconv0.weight.npy", npy.getvalue())
    with pytest.raises(canonical.WeightsError, match="more than its"):
        canonical.load(path)
