"""Shared by the RGB datasets (CIFAR-10, image folders): one resize filter, and one decoded cache.

Resizing: centre crop to a square (the shorter side), then Pillow's BICUBIC with
reducing_gap=None, i.e. Pillow's exact convolution resampler: when shrinking, its kernel is
widened by the scale factor (antialiased, no aliasing of fine texture); when enlarging (CIFAR-10's
32x32 to dcgan64's 64x64) it is plain bicubic interpolation. One filter for every dataset, so a
folder of CIFAR-10 PNGs and --dataset cifar10 give the same pixels.

Decoded cache: the parent decodes once into a uint8 NCHW .npy under the cache folder (atomic
write, named by what went into it) and hands the children its path and md5, so the parent and
every backend train on byte-identical images and a re-run does not decode again.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from common import atomic
from common.data.download import md5_file
from common.errors import DataError

log = logging.getLogger("dcgan_bench")

RESIZE_FILTER = "bicubic"  # recorded in dataset provenance
_PIL_FILTER = Image.Resampling.BICUBIC
CACHE_FORMAT = 1  # bump when decoding changes, so old caches are not reused


def center_crop_resize(image: Image.Image, size: int) -> np.ndarray:
    """A PIL RGB image -> uint8 (3, size, size): centre square crop, then the one filter."""
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    if (w, h) != (side, side):
        image = image.crop((left, top, left + side, top + side))
    if side != size:
        image = image.resize((size, size), _PIL_FILTER, reducing_gap=None)
    return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)


def resize_array(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, 3, h, w) -> uint8 (N, 3, size, size) through center_crop_resize."""
    if images.shape[2:] == (size, size):
        return images
    out = np.empty((len(images), 3, size, size), dtype=np.uint8)
    for i, img in enumerate(images):
        out[i] = center_crop_resize(Image.fromarray(img.transpose(1, 2, 0)), size)
    return out


def to_channels(images: np.ndarray, channels: int, source: str) -> np.ndarray:
    """uint8 RGB (N, 3, H, W) -> the preset's channels; 1 only for all-grey images (R == G == B)."""
    if channels == 3:
        return images
    if channels == 1:
        if not (np.array_equal(images[:, 0], images[:, 1]) and np.array_equal(images[:, 0], images[:, 2])):
            raise DataError(f"{source} has colour images but the preset has 1 channel; "
                            "use --preset dcgan64 (or a folder of greyscale images)")
        return np.ascontiguousarray(images[:, :1])
    raise DataError(f"presets with {channels} channels are not supported for {source}")


def cache_key(**parts) -> str:
    """A short stable name for a decoded set: the hash of everything that went into it."""
    blob = json.dumps(dict(parts, format=CACHE_FORMAT, filter=RESIZE_FILTER), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def decode_cached(path: Path, decode) -> tuple[np.ndarray, dict, dict]:
    """(uint8 images, info, {"path", "md5"}): the cache at path (images .npy and info .json) if it
    loads, else decode() -> (images, info) saved there, info first so an .npy implies its .json."""
    path, info_path = Path(path), Path(path).with_suffix(".json")
    if path.is_file():
        try:
            images = np.load(path, allow_pickle=False)
            info = json.loads(info_path.read_text())
            if images.dtype == np.uint8 and images.ndim == 4:
                return images, info, {"path": str(path), "md5": md5_file(path)}
        except (OSError, ValueError):
            pass
        log.warning("%s: unreadable decoded cache; decoding again", path)
    images, info = decode()
    atomic.write_json(info_path, info)
    with atomic.atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, images, allow_pickle=False)
    return images, info, {"path": str(path), "md5": md5_file(path)}


def load_decoded(decoded: dict) -> tuple[np.ndarray, dict]:
    """(images, info) the parent decoded, in a child; an error if the file is not the one it wrote."""
    path = Path(decoded["path"])
    if not path.is_file() or md5_file(path) != decoded["md5"]:
        raise DataError(f"{path}: the decoded images changed since the run started; run again")
    return np.load(path, allow_pickle=False), json.loads(path.with_suffix(".json").read_text())
