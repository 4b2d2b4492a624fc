"""`--dataset cifar10`: the python-pickle tarball from its standard mirror, md5-verified and cached
atomically (common/data/download.py), resized to the preset with the one filter of common/data/images.py.

The tarball's members are pickles. Even after the md5 verifies, they are read by name (never
extractall: no path traversal) and unpickled by RestrictedUnpickler, which resolves only the
globals a pickled uint8 numpy array needs, so a tampered mirror cannot execute code.
"""
from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

from common.data import images
from common.data.download import DownloadState, NetworkUnavailable, fetch_verified, md5_file, mirror_list
from common.errors import DataError

TARBALL = "cifar-10-python.tar.gz"
# A dict (not a constant) so tests can swap in the md5 of their fixture tarball.
CIFAR10_MD5 = {TARBALL: "c58f30108f718f92721af3b95e74349a"}
DEFAULT_MIRRORS = ("https://www.cs.toronto.edu/~kriz/",)
MIRRORS_ENV = "DCGAN_BENCH_CIFAR10_MIRRORS"
MEMBER_DIR = "cifar-10-batches-py"
SPLITS = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
SIDE = 32

# What a pickled numpy array needs (numpy 1.x and 2.x module names); nothing else resolves.
# _codecs.encode (str -> bytes, no code) is how Python 3 writes bytes in a protocol-2 pickle, as
# in a copy re-saved with Python 3; the original Python 2 files store them as plain strings.
ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR-10 batch")
        return super().find_class(module, name)


def mirrors(explicit=None) -> list[str]:
    """Explicit argument, else $DCGAN_BENCH_CIFAR10_MIRRORS (comma-separated), else the default."""
    return mirror_list(explicit, MIRRORS_ENV, DEFAULT_MIRRORS)


def read_batch(tar: tarfile.TarFile, member_name: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    """One batch member -> (uint8 (N, 3, 32, 32), int64 labels), checked."""
    name = f"{MEMBER_DIR}/{member_name}"
    try:
        member = tar.getmember(name)
    except KeyError:
        raise DataError(f"{source}: {name} missing; it is not the CIFAR-10 python tarball") from None
    if not member.isfile():
        raise DataError(f"{source}: {name} is not a regular file; it is not the CIFAR-10 python tarball")
    blob = tar.extractfile(member).read()
    try:
        batch = RestrictedUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise DataError(f"{source}: {name} unreadable ({' '.join(str(exc).split())}); "
                        "delete it so the tarball is fetched again") from None
    data, labels = (batch.get(b"data"), batch.get(b"labels")) if isinstance(batch, dict) else (None, None)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3 * SIDE * SIDE or labels is None or len(labels) != len(data):
        raise DataError(f"{source}: {name} is not a CIFAR-10 batch (needs b'data' uint8 (N, 3072) "
                        "and as many b'labels')")
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{source}: {name} has labels outside 0..9")
    return data.reshape(-1, 3, SIDE, SIDE), labels


def read_tarball(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with tarfile.open(path, "r:gz") as tar:
            parts = [read_batch(tar, m, str(path)) for m in SPLITS[split]]
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{path}: unreadable ({' '.join(str(exc).split())}); "
                        "delete it so it is fetched again") from None
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def tarball_path(data_dir, cache_dir: Path, mirror_list, timeout: float, state) -> Path:
    if data_dir is not None:
        path = Path(data_dir) / TARBALL
        if not path.is_file():
            raise DataError(f"--data-dir {data_dir} lacks {TARBALL}; put the CIFAR-10 python "
                            "tarball there or drop --data-dir to download it")
        got = md5_file(path)
        if got != CIFAR10_MD5[TARBALL]:
            raise DataError(f"{path}: md5 mismatch (got {got}, expected {CIFAR10_MD5[TARBALL]}); "
                            "replace it with the original CIFAR-10 python tarball")
        return path
    try:
        return fetch_verified(TARBALL, CIFAR10_MD5[TARBALL], mirror_list, cache_dir,
                              timeout=timeout, state=state)
    except NetworkUnavailable as exc:
        # No substitute data set: CIFAR-10 is what the user asked for.
        raise DataError(f"{exc} (CIFAR-10 has no offline fallback)") from None


def load_cifar10(preset, *, split: str = "train", data_dir=None, cache_dir: Path, mirrors_=None,
                 timeout: float = 30.0, state: DownloadState | None = None, decoded: dict | None = None):
    """(uint8 (N, C, size, size), labels, provenance). With `decoded` (a child of run_all.py) the
    parent's decoded file, with no network and no tarball."""
    if preset.channels != 3:
        raise DataError(f"cifar10 is RGB and needs a 3-channel preset, got {preset.name}; use --preset dcgan64")
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    if decoded is not None:
        arr, info = images.load_decoded(decoded)
        return arr, np.asarray(info["labels"], np.int64), {"decoded": decoded}
    urls = mirrors(mirrors_)
    path = tarball_path(data_dir, Path(cache_dir), urls, timeout, state)
    key = images.cache_key(kind="cifar10", md5=CIFAR10_MD5[TARBALL], split=split, size=preset.image_size)

    def decode():
        raw, labels = read_tarball(path, split)
        return images.resize_array(raw, preset.image_size), {"labels": labels.tolist()}
    arr, info, decoded = images.decode_cached(Path(cache_dir) / f"decoded-{key}.npy", decode)
    source = {"tarball": str(path), "mirrors": None if data_dir else urls,
              "data_dir": str(data_dir) if data_dir else None, "decoded": decoded,
              "filter": images.RESIZE_FILTER}
    return arr, np.asarray(info["labels"], np.int64), source
