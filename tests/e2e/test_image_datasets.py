"""The RGB datasets: image folders (common/data/image_folder.py), CIFAR-10 over a loopback server with a
small fixture tarball in the real format (common/data/cifar.py), and their shared resize and decoded
cache (common/data/images.py)."""
from __future__ import annotations

import hashlib
import io
import logging
import pickle
import tarfile
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.data import cifar, image_folder, images
from common.data import load_dataset
from common.data.download import DownloadState
from common.errors import DataError
from common.spec import DATASET_PRESETS, FOLDER_PRESET, PRESETS
from tests.support.loopback import FixtureServer, refused_url

pytestmark = pytest.mark.usefixtures("isolated_env")

RGB64 = PRESETS["dcgan64"]
RGB32 = types.SimpleNamespace(name="rgb32", image_size=32, channels=3)  # CIFAR-10's own size
GREY32 = PRESETS["mnist32"]


def save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def assert_one_line(exc_info, *needles):
    message = str(exc_info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


# ---- the one resize filter ---------------------------------------------------------------------

def test_centre_crop_takes_the_middle_square():
    # 60 wide, 20 high: a white 20x20 square in the middle, black bands left and right.
    a = np.zeros((20, 60, 3), np.uint8)
    a[:, 20:40] = 255
    out = images.center_crop_resize(Image.fromarray(a), 20)  # crop only, no resize
    assert out.shape == (3, 20, 20) and (out == 255).all()
    tall = np.zeros((60, 20, 3), np.uint8)
    tall[20:40] = 255
    assert (images.center_crop_resize(Image.fromarray(tall), 20) == 255).all()


def test_downscaling_is_antialiased():
    # A 1-pixel checkerboard shrunk 4x: an antialiased filter averages it to mid grey; point
    # sampling (nearest) would keep pure black/white and alias.
    board = ((np.indices((256, 256)).sum(axis=0) % 2) * 255).astype(np.uint8)
    out = images.center_crop_resize(Image.fromarray(np.stack([board] * 3, -1)), 64).astype(float)
    assert abs(out.mean() - 127.5) < 2 and out.std() < 2


def test_upscaling_keeps_constant_images_and_the_layout():
    a = np.zeros((2, 3, 32, 32), np.uint8)
    a[0, 0] = 200  # image 0: red channel only
    a[1, :, :16] = 90  # image 1: top half grey
    out = images.resize_array(a, 64)
    assert out.shape == (2, 3, 64, 64)
    assert (out[0, 0] == 200).all() and (out[0, 1:] == 0).all()
    # bicubic rings within 2 source pixels (4 output rows) of the edge at row 32
    assert (out[1, :, :28] == 90).all() and (out[1, :, 36:] == 0).all()


# ---- image folders -----------------------------------------------------------------------------

@pytest.fixture
def folder(tmp_path):
    """Nested png/jpg/JPG images of different sizes and aspect ratios, plus non-image files."""
    root = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for i, rel in enumerate(["a.png", "sub/b.jpg", "sub/deeper/c.JPG", "sub/d.jpeg", "z.png"]):
        h, w = 40 + 10 * i, 90 - 10 * i
        save(root / rel, rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    (root / "notes.txt").write_text("not an image")
    (root / "sub" / "e.gif").write_bytes(b"GIF89a")
    return root


def test_folder_finds_every_image_at_any_depth_in_sorted_order(folder):
    found = [p.relative_to(folder).as_posix() for p in image_folder.find_images(folder)]
    assert found == ["a.png", "sub/b.jpg", "sub/d.jpeg", "sub/deeper/c.JPG", "z.png"]


def test_folder_dataset_is_cropped_resized_and_scaled(folder, tmp_path):
    ds = load_dataset(str(folder), RGB64, cache_dir=tmp_path / "cache")
    assert ds.name == "image-folder" and ds.labels is None
    assert ds.images.shape == (5, 3, 64, 64) and ds.images.dtype == np.float32
    assert ds.images.min() >= -1 and ds.images.max() <= 1
    # Image 0 by hand: the same crop and filter, then the MNIST scaling.
    with Image.open(folder / "a.png") as img:
        expected = images.center_crop_resize(img.convert("RGB"), 64).astype(np.float32) / 127.5 - 1
    np.testing.assert_allclose(ds.images[0], expected, atol=1e-6)
    assert ds.meta["n"] == 5 and ds.meta["skipped"] == [] and ds.meta["warning"] is None
    assert ds.meta["source"]["filter"] == "bicubic"


def test_folder_default_preset_is_dcgan64():
    assert FOLDER_PRESET == "dcgan64" and DATASET_PRESETS["cifar10"] == "dcgan64"
    assert image_folder.is_folder_dataset("./photos") and not image_folder.is_folder_dataset("cifar10")


def test_unreadable_files_are_skipped_and_listed(folder, tmp_path, caplog):
    (folder / "sub" / "broken.png").write_bytes(b"\x89PNG but truncated")
    (folder / "empty.jpg").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="dcgan_bench"):
        ds = load_dataset(str(folder), RGB64, cache_dir=tmp_path / "cache")
    assert len(ds.images) == 5
    assert [s["file"] for s in ds.meta["skipped"]] == ["empty.jpg", "sub/broken.png"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "skipped 2 of 7" in warnings[0]
    assert "empty.jpg" in warnings[0] and "sub/broken.png" in warnings[0]
    assert ds.meta["warning"] == warnings[0]


@pytest.mark.parametrize("content,needle", [
    ({}, "no .png or .jpg images"),
    ({"x.png": b"garbage", "y.jpg": b""}, "none of its 2 image files could be read"),
], ids=["empty", "all-unreadable"])
def test_folder_without_readable_images_is_a_one_line_error(tmp_path, content, needle):
    root = tmp_path / "imgs"
    root.mkdir()
    (root / "readme.txt").write_text("no images here")
    for name, blob in content.items():
        (root / name).write_bytes(blob)
    with pytest.raises(DataError) as info:
        load_dataset(str(root), RGB64, cache_dir=tmp_path / "cache")
    assert_one_line(info, needle, str(root))


def test_missing_folder_is_a_one_line_error(tmp_path):
    with pytest.raises(DataError) as info:
        load_dataset(str(tmp_path / "nowhere"), RGB64, cache_dir=tmp_path / "cache")
    assert_one_line(info, "no such folder")


def test_grey_folder_fits_mnist32_and_colour_does_not(tmp_path, folder):
    grey = tmp_path / "grey"
    for i in range(3):
        save(grey / f"{i}.png", np.full((40, 40), 60 * i, np.uint8))
    ds = load_dataset(str(grey), GREY32, cache_dir=tmp_path / "cache")
    assert ds.images.shape == (3, 1, 32, 32)
    np.testing.assert_allclose(ds.images[2], 120 / 127.5 - 1, atol=1e-6)
    with pytest.raises(DataError) as info:
        load_dataset(str(folder), GREY32, cache_dir=tmp_path / "cache")
    assert_one_line(info, "--preset dcgan64")


def test_decoded_cache_is_reused_and_invalidated_by_a_changed_file(folder, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = load_dataset(str(folder), RGB64, cache_dir=cache)
    real_decode = image_folder.decode_files

    def no_decoding(*args):
        raise AssertionError("decoded again although nothing changed")
    monkeypatch.setattr(image_folder, "decode_files", no_decoding)
    again = load_dataset(str(folder), RGB64, cache_dir=cache)
    assert np.array_equal(first.images, again.images)

    monkeypatch.setattr(image_folder, "decode_files", real_decode)
    save(folder / "a.png", np.zeros((64, 64, 3), np.uint8))
    changed = load_dataset(str(folder), RGB64, cache_dir=cache)
    assert (changed.images[0] == -1).all() and np.array_equal(changed.images[1:], first.images[1:])
    assert not list(cache.glob(".*"))  # no temp files left by the atomic writes


def test_child_loads_the_parents_pixels_and_refuses_changed_ones(folder, tmp_path):
    parent = load_dataset(str(folder), RGB64, cache_dir=tmp_path / "cache")
    decoded = parent.meta["source"]["decoded"]
    for p in folder.rglob("*.png"):
        p.unlink()  # the child does not read the folder again
    child = load_dataset(str(folder), RGB64, decoded=decoded)
    assert np.array_equal(child.images, parent.images)
    with open(decoded["path"], "r+b") as f:
        f.seek(-1, 2)
        f.write(b"\x01")
    with pytest.raises(DataError, match="changed since the run started"):
        load_dataset(str(folder), RGB64, decoded=decoded)


# ---- CIFAR-10 over a loopback server ----------------------------------------------------------

N_PER_BATCH = 3


def fixture_batches():
    """{member: dict} in CIFAR-10's format: b'data' uint8 (N, 3072) channel-major rows."""
    rng = np.random.default_rng(5)
    batches = {}
    for k, member in enumerate(cifar.SPLITS["train"] + cifar.SPLITS["test"]):
        batches[member] = {b"batch_label": member.encode(),
                           b"data": rng.integers(0, 256, (N_PER_BATCH, 3072), dtype=np.uint8),
                           b"labels": [(k + i) % 10 for i in range(N_PER_BATCH)]}
    return batches


def make_tarball(path: Path, members: dict[str, bytes]) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return hashlib.md5(path.read_bytes()).hexdigest()


def real_format_members(batches) -> dict[str, bytes]:
    members = {f"{cifar.MEMBER_DIR}/{m}": pickle.dumps(b, protocol=2) for m, b in batches.items()}
    members[f"{cifar.MEMBER_DIR}/batches.meta"] = pickle.dumps({b"label_names": [b"airplane"]}, protocol=2)
    return members


@pytest.fixture
def batches():
    return fixture_batches()


@pytest.fixture
def cifar_served(tmp_path, monkeypatch, batches):
    root = tmp_path / "served"
    root.mkdir()
    md5 = make_tarball(root / cifar.TARBALL, real_format_members(batches))
    monkeypatch.setitem(cifar.CIFAR10_MD5, cifar.TARBALL, md5)
    return root


@pytest.fixture
def cifar_server(cifar_served):
    srv = FixtureServer(cifar_served)
    yield srv
    srv.stop()


def test_cifar_download_verifies_caches_and_keeps_the_layout(cifar_server, tmp_path, batches):
    cache = tmp_path / "cache"
    ds = load_dataset("cifar10", RGB32, cache_dir=cache, mirrors=[cifar_server.url], state=DownloadState())
    assert cifar_server.requests == ["/" + cifar.TARBALL]
    assert ds.name == "cifar10" and ds.images.shape == (5 * N_PER_BATCH, 3, 32, 32)
    # Row layout: 1024 red, then green, then blue values, each row-major: pixel (c, y, x).
    first = batches["data_batch_1"][b"data"][0]
    np.testing.assert_allclose(ds.images[0, 1, 2, 3], first[1024 + 2 * 32 + 3] / 127.5 - 1, atol=1e-6)
    expected = np.concatenate([batches[m][b"data"] for m in cifar.SPLITS["train"]]).reshape(-1, 3, 32, 32)
    np.testing.assert_allclose(ds.images, expected / 127.5 - 1, atol=1e-6)
    assert ds.labels.tolist() == sum((batches[m][b"labels"] for m in cifar.SPLITS["train"]), [])
    assert (cache / cifar.TARBALL).read_bytes() == (cifar_server.root / cifar.TARBALL).read_bytes()

    test = load_dataset("cifar10", RGB32, cache_dir=cache, mirrors=[cifar_server.url], split="test",
                        state=DownloadState())
    assert len(test.images) == N_PER_BATCH and len(cifar_server.requests) == 1  # from the cache


def test_cifar_is_resized_to_dcgan64_and_children_load_the_same_pixels(cifar_server, tmp_path):
    parent = load_dataset("cifar10", RGB64, cache_dir=tmp_path / "cache", mirrors=[cifar_server.url],
                          state=DownloadState())
    assert parent.images.shape == (5 * N_PER_BATCH, 3, 64, 64)
    assert parent.meta["source"]["filter"] == "bicubic"
    child = load_dataset("cifar10", RGB64, decoded=parent.meta["source"]["decoded"], mirrors=[refused_url()])
    assert np.array_equal(child.images, parent.images) and np.array_equal(child.labels, parent.labels)
    with pytest.raises(DataError, match="3-channel preset"):
        load_dataset("cifar10", GREY32, cache_dir=tmp_path / "cache", mirrors=[cifar_server.url])


def test_cifar_md5_mismatch_caches_nothing(cifar_server, tmp_path):
    cifar_server.mode = "corrupt"
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", RGB64, cache_dir=tmp_path / "cache", mirrors=[cifar_server.url],
                     state=DownloadState())
    assert_one_line(info, "md5 mismatch", cifar.TARBALL)
    assert not (tmp_path / "cache").exists() or list((tmp_path / "cache").iterdir()) == []


def test_cifar_without_network_is_an_error_not_a_substitute(tmp_path):
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", RGB64, cache_dir=tmp_path / "cache", mirrors=[refused_url()],
                     state=DownloadState())
    assert_one_line(info, "no offline fallback")


def test_cifar_env_mirrors_and_data_dir(cifar_server, cifar_served, monkeypatch, tmp_path):
    monkeypatch.setenv(cifar.MIRRORS_ENV, cifar_server.url)
    monkeypatch.setenv("DCGAN_BENCH_CACHE", str(tmp_path / "env-cache"))
    load_dataset("cifar10", RGB32, state=DownloadState())
    assert (tmp_path / "env-cache" / "cifar10" / cifar.TARBALL).is_file()
    cifar_server.requests.clear()
    ds = load_dataset("cifar10", RGB32, data_dir=cifar_served, cache_dir=tmp_path / "c2")
    assert cifar_server.requests == [] and ds.meta["source"]["data_dir"] == str(cifar_served)
    with pytest.raises(DataError, match="lacks cifar-10-python.tar.gz"):
        load_dataset("cifar10", RGB32, data_dir=tmp_path, cache_dir=tmp_path / "c3")


def test_tampered_pickle_is_refused_even_with_a_matching_md5(tmp_path, monkeypatch, batches):
    # A pickle whose unpickling would run code: os.system touching a marker file.
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            import os
            return (os.system, (f"touch {marker}",))
    members = real_format_members(batches)
    members[f"{cifar.MEMBER_DIR}/data_batch_2"] = pickle.dumps({b"data": Exploit()}, protocol=2)
    data_dir = tmp_path / "dl"
    data_dir.mkdir()
    monkeypatch.setitem(cifar.CIFAR10_MD5, cifar.TARBALL, make_tarball(data_dir / cifar.TARBALL, members))
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", RGB32, data_dir=data_dir, cache_dir=tmp_path / "cache")
    assert_one_line(info, "system is not allowed")
    assert not marker.exists()


def test_members_are_read_by_name_never_extracted(tmp_path, monkeypatch, batches):
    members = real_format_members(batches)
    members["../escaped.txt"] = b"path traversal"
    data_dir = tmp_path / "dl" / "deep"
    data_dir.mkdir(parents=True)
    monkeypatch.setitem(cifar.CIFAR10_MD5, cifar.TARBALL, make_tarball(data_dir / cifar.TARBALL, members))
    ds = load_dataset("cifar10", RGB32, data_dir=data_dir, cache_dir=tmp_path / "cache")
    assert len(ds.images) == 5 * N_PER_BATCH
    assert not (tmp_path / "dl" / "escaped.txt").exists() and not Path("escaped.txt").exists()


def test_a_tarball_without_the_batches_is_a_clear_error(tmp_path, monkeypatch):
    data_dir = tmp_path / "dl"
    data_dir.mkdir()
    md5 = make_tarball(data_dir / cifar.TARBALL, {"something/else": b"x"})
    monkeypatch.setitem(cifar.CIFAR10_MD5, cifar.TARBALL, md5)
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", RGB32, data_dir=data_dir, cache_dir=tmp_path / "cache")
    assert_one_line(info, "data_batch_1 missing")
