"""Tests for common.canonical: the shared initialisation and the canonical .npz interchange format."""
from __future__ import annotations

import io
import json
import math
import pathlib
import struct
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from common import canonical
from common.errors import DataError
from common.spec import model_spec
from common.canonical import FORMAT_VERSION, META_KEY, WeightsError

MNIST = model_spec("mnist32")
DCGAN = model_spec("dcgan64")
SIGMAS = 6  # sampling-error bounds below are 6 standard errors: a false failure is ~1e-9 likely


def _meta(preset="mnist32", version=FORMAT_VERSION) -> str:
    return json.dumps({"preset": preset, "format_version": version})


def _write_npz(path, arrays: dict, meta: str | None = None) -> None:
    """An .npz written by hand (bypassing canonical.save's validation); object arrays are pickled."""
    extra = {} if meta is None else {META_KEY: np.array(meta)}
    with open(path, "wb") as f:
        np.savez(f, **arrays, **extra)


@pytest.fixture(scope="module")
def mnist_w():
    return canonical.draw_initial_weights(MNIST, 0)


@pytest.fixture
def w(mnist_w):
    """A fresh copy the test may modify."""
    return {k: v.copy() for k, v in mnist_w.items()}


# ----- draw_initial_weights -----
def test_draw_has_exactly_the_spec_keys_shapes_and_float32(mnist_w):
    assert list(mnist_w) == list(MNIST.parameter_shapes())
    for key, shape in MNIST.parameter_shapes().items():
        assert mnist_w[key].shape == shape, key
        assert mnist_w[key].dtype == np.float32, key
    canonical.validate(mnist_w, MNIST)  # and it passes the file format's own check


def test_draw_is_deterministic_per_seed(mnist_w):
    again = canonical.draw_initial_weights(MNIST, 0)
    for key in mnist_w:
        assert mnist_w[key].tobytes() == again[key].tobytes(), key


def test_draw_differs_across_seeds(mnist_w):
    other = canonical.draw_initial_weights(MNIST, 1)
    for key in mnist_w:
        if key.endswith(("weight", "gamma")):  # the random tensors
            assert not np.array_equal(mnist_w[key], other[key]), key


def test_random_tensors_are_not_copies_of_one_stream(mnist_w):
    # Catches a generator re-seeded per tensor: every tensor would start with the same numbers.
    heads = [tuple(v.ravel()[:16]) for k, v in mnist_w.items() if k.endswith(("weight", "gamma"))]
    assert len(set(heads)) == len(heads)


@pytest.mark.parametrize("key", [k for k in MNIST.parameter_shapes() if k.endswith(".weight")])
def test_conv_weights_are_normal_0_002(mnist_w, key):
    x = mnist_w[key].astype(np.float64).ravel()
    n, std = x.size, MNIST.init_std
    # mean of n N(0, s^2) draws has standard error s/sqrt(n); the sample std about s/sqrt(2(n-1)).
    assert abs(x.mean()) < SIGMAS * std / math.sqrt(n)
    assert abs(x.std(ddof=1) - std) < SIGMAS * std / math.sqrt(2 * (n - 1))


def test_all_conv_weights_pooled_are_normal_0_002():
    w = canonical.draw_initial_weights(DCGAN, 3)
    x = np.concatenate([v.ravel() for k, v in w.items() if k.endswith(".weight")]).astype(np.float64)
    n = x.size  # ~6.3M: bounds are tight, about 5e-5 on the mean and 4e-5 on the std
    assert abs(x.mean()) < SIGMAS * 0.02 / math.sqrt(n)
    assert abs(x.std(ddof=1) - 0.02) < SIGMAS * 0.02 / math.sqrt(2 * (n - 1))
    # Normal, not e.g. uniform with the same std: the fraction within one sigma is ~68.27%.
    within = np.mean(np.abs(x) < 0.02)
    p = 0.6826894921370859
    assert abs(within - p) < SIGMAS * math.sqrt(p * (1 - p) / n)


def test_bn_gamma_is_normal_1_002_and_other_bn_tensors_are_constant():
    w = canonical.draw_initial_weights(DCGAN, 0)
    gammas = np.concatenate([v for k, v in w.items() if k.endswith(".gamma")]).astype(np.float64)
    n, std = gammas.size, DCGAN.bn.gamma_init_std  # n = G 512+256+128+64 + D 128+256+512 = 1856
    assert abs(gammas.mean() - 1.0) < SIGMAS * std / math.sqrt(n)
    assert abs(gammas.std(ddof=1) - std) < SIGMAS * std / math.sqrt(2 * (n - 1))
    for key, v in w.items():
        if key.endswith(".beta") or key.endswith(".running_mean"):
            assert np.all(v == 0.0), key
        elif key.endswith(".running_var"):
            assert np.all(v == 1.0), key


# ----- save / load -----
def test_save_load_round_trip_is_bit_exact(tmp_path, mnist_w):
    path = tmp_path / "w.npz"
    canonical.save(path, mnist_w, MNIST)
    loaded, spec = canonical.load(path)
    assert spec.preset.name == "mnist32"
    assert list(loaded) == list(mnist_w)
    for key in mnist_w:
        assert loaded[key].dtype == np.float32
        assert loaded[key].shape == mnist_w[key].shape
        assert loaded[key].tobytes() == mnist_w[key].tobytes(), key


def test_saved_file_has_meta_with_preset_and_format_version(tmp_path, mnist_w):
    path = tmp_path / "w.npz"
    canonical.save(path, mnist_w, MNIST)
    with np.load(path, allow_pickle=False) as npz:  # plain .npz, readable without pickle
        assert set(npz.files) == set(mnist_w) | {META_KEY}
        meta = json.loads(str(npz[META_KEY]))
        assert all(npz[k].dtype == np.float32 for k in mnist_w)
    assert meta == {"preset": "mnist32", "format_version": FORMAT_VERSION}


def test_save_converts_float64_to_float32(tmp_path, mnist_w):
    w64 = {k: v.astype(np.float64) for k, v in mnist_w.items()}
    canonical.save(tmp_path / "w.npz", w64, MNIST)
    loaded, _ = canonical.load(tmp_path / "w.npz", MNIST)
    assert all(v.dtype == np.float32 for v in loaded.values())
    assert loaded["G.deconv0.weight"].tobytes() == mnist_w["G.deconv0.weight"].tobytes()


def test_load_with_matching_spec(tmp_path, mnist_w):
    canonical.save(tmp_path / "w.npz", mnist_w, MNIST)
    _, spec = canonical.load(tmp_path / "w.npz", MNIST)
    assert spec == MNIST


def test_weights_error_is_a_data_error_and_value_error():
    assert issubclass(WeightsError, DataError) and issubclass(WeightsError, ValueError)


# ----- validation, in memory and from a file -----
def test_validate_missing_key_names_key_and_expected_shape(w):
    del w["G.bn1.running_var"]
    with pytest.raises(WeightsError) as info:
        canonical.validate(w, MNIST)
    assert "'G.bn1.running_var'" in str(info.value)
    assert "(128,)" in str(info.value)


def test_load_missing_key_names_key_and_expected_shape(tmp_path, w):
    del w["D.conv2.weight"]
    _write_npz(tmp_path / "w.npz", w, _meta())
    with pytest.raises(WeightsError) as info:
        canonical.load(tmp_path / "w.npz")
    msg = str(info.value)
    assert "'D.conv2.weight'" in msg and "(256, 128, 4, 4)" in msg and "missing" in msg


def test_load_wrong_shape_names_key_got_and_expected(tmp_path, w):
    # The classic layout slip: a deconv weight stored as (out, in, kh, kw).
    w["G.deconv1.weight"] = np.ascontiguousarray(w["G.deconv1.weight"].transpose(1, 0, 2, 3))
    _write_npz(tmp_path / "w.npz", w, _meta())
    with pytest.raises(WeightsError) as info:
        canonical.load(tmp_path / "w.npz")
    msg = str(info.value)
    assert "'G.deconv1.weight'" in msg
    assert "(128, 256, 4, 4)" in msg  # got
    assert "(256, 128, 4, 4)" in msg  # expected
    assert msg.index("(128, 256, 4, 4)") < msg.index("(256, 128, 4, 4)")  # "got ..., expected ..."


def test_load_extra_key_is_refused_and_named(tmp_path, w):
    w["G.bn0.num_batches_tracked"] = np.zeros((), np.float32)  # a framework extra
    _write_npz(tmp_path / "w.npz", w, _meta())
    with pytest.raises(WeightsError, match="num_batches_tracked"):
        canonical.load(tmp_path / "w.npz")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_load_non_finite_values_are_refused(tmp_path, w, bad):
    w["D.bn2.gamma"][7] = bad
    _write_npz(tmp_path / "w.npz", w, _meta())
    with pytest.raises(WeightsError, match=r"'D\.bn2\.gamma'.*non-finite"):
        canonical.load(tmp_path / "w.npz")


def test_save_refuses_invalid_weights_and_writes_nothing(tmp_path, w):
    w["G.bn0.beta"][0] = np.nan
    with pytest.raises(WeightsError):
        canonical.save(tmp_path / "w.npz", w, MNIST)
    assert list(tmp_path.iterdir()) == []


def test_load_preset_mismatch_names_both_presets(tmp_path, mnist_w):
    canonical.save(tmp_path / "w.npz", mnist_w, MNIST)
    with pytest.raises(WeightsError) as info:
        canonical.load(tmp_path / "w.npz", DCGAN)
    assert "mnist32" in str(info.value) and "dcgan64" in str(info.value)


def test_load_mnist_weights_labelled_dcgan64_fails_on_shapes(tmp_path, mnist_w):
    _write_npz(tmp_path / "w.npz", mnist_w, _meta("dcgan64"))
    with pytest.raises(WeightsError, match="dcgan64"):
        canonical.load(tmp_path / "w.npz")


def test_load_newer_format_version_is_refused(tmp_path, mnist_w):
    _write_npz(tmp_path / "w.npz", mnist_w, _meta(version=FORMAT_VERSION + 1))
    with pytest.raises(WeightsError, match="newer"):
        canonical.load(tmp_path / "w.npz")


def test_load_without_meta_is_refused(tmp_path, mnist_w):
    _write_npz(tmp_path / "w.npz", mnist_w, meta=None)
    with pytest.raises(WeightsError, match="'meta'"):
        canonical.load(tmp_path / "w.npz")


@pytest.mark.parametrize("meta", ["not json", "[1, 2]", "5", '{"preset": "mnist32"}',
                                  '{"format_version": "one", "preset": "mnist32"}',
                                  '{"format_version": null, "preset": "mnist32"}'])
def test_load_malformed_meta_is_refused(tmp_path, mnist_w, meta):
    _write_npz(tmp_path / "w.npz", mnist_w, meta)
    with pytest.raises(WeightsError, match="malformed"):
        canonical.load(tmp_path / "w.npz")


def test_load_unknown_preset_in_meta_lists_valid_presets(tmp_path, mnist_w):
    _write_npz(tmp_path / "w.npz", mnist_w, _meta("celeba128"))
    with pytest.raises(WeightsError) as info:
        canonical.load(tmp_path / "w.npz")
    assert "celeba128" in str(info.value) and "mnist32" in str(info.value)


# ----- files that are not weight files -----
def test_load_missing_file(tmp_path):
    with pytest.raises(WeightsError, match="no such weight file"):
        canonical.load(tmp_path / "absent.npz")


def test_load_random_bytes(tmp_path):
    path = tmp_path / "w.npz"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(WeightsError, match="npz weight file"):
        canonical.load(path)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.999])
def test_load_truncated_npz(tmp_path, mnist_w, fraction):
    path = tmp_path / "w.npz"
    canonical.save(path, mnist_w, MNIST)
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * fraction)])
    with pytest.raises(WeightsError):
        canonical.load(path)


def test_load_a_directory(tmp_path):
    with pytest.raises(WeightsError):
        canonical.load(tmp_path)


def _record_unpickle(marker: str):
    """Called only if an object array is unpickled: leaves a marker file behind."""
    pathlib.Path(marker).write_text("unpickled")
    return "payload"


class _Bomb:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return _record_unpickle, (self.marker,)


def test_object_array_is_refused_without_unpickling(tmp_path, w):
    marker = tmp_path / "unpickled.txt"
    obj = np.empty(w["G.bn0.beta"].shape, dtype=object)
    obj[:] = [_Bomb(str(marker))] * obj.size
    w["G.bn0.beta"] = obj
    path = tmp_path / "w.npz"
    _write_npz(path, w, _meta())
    with pytest.raises(WeightsError):
        canonical.load(path)
    assert not marker.exists(), "canonical.load unpickled an object array"
    # The trap is real: loading the same file with pickle allowed does run the payload.
    with np.load(path, allow_pickle=True) as npz:
        npz["G.bn0.beta"]
    assert marker.exists()


def test_object_meta_is_refused(tmp_path, mnist_w):
    path = tmp_path / "w.npz"
    with open(path, "wb") as f:
        np.savez(f, **mnist_w, **{META_KEY: np.array([{"preset": "mnist32"}], dtype=object)})
    with pytest.raises(WeightsError):
        canonical.load(path)


# ----- atomic save -----
def test_save_leaves_no_temporary_files(tmp_path, mnist_w):
    canonical.save(tmp_path / "w.npz", mnist_w, MNIST)
    canonical.save(tmp_path / "w.npz", mnist_w, MNIST)  # overwrite too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.npz"]


def test_failing_save_keeps_the_previous_file(tmp_path, mnist_w, monkeypatch):
    path = tmp_path / "w.npz"
    canonical.save(path, mnist_w, MNIST)
    before = path.read_bytes()

    def broken_savez(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    new = canonical.draw_initial_weights(MNIST, 1)
    with pytest.raises(OSError, match="disk full"):
        canonical.save(path, new, MNIST)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.npz"]


def test_save_interrupted_mid_write_keeps_the_previous_file(tmp_path, mnist_w, monkeypatch):
    # A failure after half the bytes reached the disk: the reader must still see the old file.
    path = tmp_path / "w.npz"
    canonical.save(path, mnist_w, MNIST)
    before = path.read_bytes()
    real_write_bytes = pathlib.Path.write_bytes

    def half_then_fail(self, data):
        real_write_bytes(self, data[:len(data) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(pathlib.Path, "write_bytes", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        canonical.save(path, canonical.draw_initial_weights(MNIST, 1), MNIST)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.npz"]
    loaded, _ = canonical.load(path)
    assert loaded["G.deconv0.weight"].tobytes() == mnist_w["G.deconv0.weight"].tobytes()


# ----- fuzz: arbitrary bytes -----
@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def small_valid_npz(scratch, mnist_w) -> bytes:
    path = scratch / "valid.npz"
    canonical.save(path, mnist_w, MNIST)
    return path.read_bytes()


_ZIP_MAGIC = b"PK\x03\x04"


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(
    st.binary(max_size=2048),
    st.binary(max_size=2048).map(lambda b: _ZIP_MAGIC + b),        # looks like a zip at first
    st.binary(max_size=2048).map(lambda b: b"PK\x05\x06" + b),     # an "empty zip" record
    st.floats(0, 1, exclude_max=True).map(lambda f: ("truncate", f)),
))
def test_load_of_arbitrary_bytes_raises_only_weights_error(scratch, small_valid_npz, data):
    if isinstance(data, tuple):  # a valid file cut short anywhere
        data = small_valid_npz[:int(len(small_valid_npz) * data[1])]
    path = scratch / "fuzz.npz"
    path.write_bytes(data)
    with pytest.raises(WeightsError):
        canonical.load(path)


# ----- known bugs: corrupt files whose exception escapes as something other than WeightsError -----
def _npy_bytes(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _npz_with_zip_flags(flags: int, method: int | None = None) -> bytes:
    """A one-member npz whose zip headers are patched (flags: encryption bits; method: compression)."""
    buf = io.BytesIO()
    np.savez(buf, meta=np.array(_meta()))
    raw = bytearray(buf.getvalue())
    cd = raw.find(b"PK\x01\x02")
    raw[6:8] = raw[cd + 8:cd + 10] = struct.pack("<H", flags)
    if method is not None:
        raw[8:10] = raw[cd + 10:cd + 12] = struct.pack("<H", method)
    return bytes(raw)


def _npz_with_member(name: str, member: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(name, member)
    return buf.getvalue()


_UNTERMINATED_HEADER = b"{'descr': '<f4', 'fortran_order': False, 'shape': (3,"
_UNTERMINATED_HEADER += b" " * (63 - len(_UNTERMINATED_HEADER) % 64) + b"\n"

def test_load_plain_npy_file_is_refused(tmp_path):
    path = tmp_path / "w.npz"
    path.write_bytes(_npy_bytes(np.zeros(3, np.float32)))
    with pytest.raises(WeightsError):
        canonical.load(path)


@pytest.mark.parametrize("flags, method", [(0x1, None), (0x41, None), (0x0, 99)],
                         ids=["encrypted", "strong-encryption", "unknown-compression"])
def test_load_zip_with_unsupported_features_is_refused(tmp_path, flags, method):
    path = tmp_path / "w.npz"
    path.write_bytes(_npz_with_zip_flags(flags, method))
    with pytest.raises(WeightsError):
        canonical.load(path)


def test_load_npy_member_with_unterminated_header_is_refused(tmp_path):
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(_UNTERMINATED_HEADER)) + _UNTERMINATED_HEADER
    path = tmp_path / "w.npz"
    path.write_bytes(_npz_with_member("meta.npy", npy + b"\0" * 12))
    with pytest.raises(WeightsError):
        canonical.load(path)


def test_load_npy_member_with_huge_shape_is_refused(tmp_path):
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (10000000000000,), }"
    header += b" " * (63 - len(header) % 64) + b"\n"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header
    path = tmp_path / "w.npz"
    path.write_bytes(_npz_with_member("meta.npy", npy + b"\0" * 12))
    with pytest.raises(WeightsError):
        canonical.load(path)


@pytest.mark.parametrize("version", ["Infinity", "1e400"])
def test_load_meta_with_infinite_format_version_is_refused(tmp_path, mnist_w, version):
    _write_npz(tmp_path / "w.npz", mnist_w,
               '{"format_version": %s, "preset": "mnist32"}' % version)
    with pytest.raises(WeightsError):
        canonical.load(tmp_path / "w.npz")


@pytest.mark.filterwarnings("ignore::numpy.exceptions.ComplexWarning")  # numpy >= 1.25
@pytest.mark.parametrize("dtype", ["U1", [("a", "<f4")], "M8[s]", "complex128"],
                         ids=["str", "structured", "datetime", "complex"])
def test_load_non_numeric_weight_dtype_is_refused(tmp_path, w, dtype):
    w["G.bn0.beta"] = np.zeros(w["G.bn0.beta"].shape, dtype=dtype)
    _write_npz(tmp_path / "w.npz", w, _meta())
    with pytest.raises(WeightsError):
        canonical.load(tmp_path / "w.npz")
