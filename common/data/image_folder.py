"""`--dataset PATH`: every .png/.jpg/.jpeg under a folder (any nesting), centre-cropped and resized
with the one filter of common/data/images.py.

Files are taken in sorted relative-path order, so the same folder gives the same dataset on any
machine. A file Pillow cannot decode is skipped and listed (a warning naming the first few and the
count, all of them in the dataset's provenance); a folder with no readable image is an error.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from common.data import images
from common.errors import DataError

log = logging.getLogger("dcgan_bench")

SUFFIXES = (".png", ".jpg", ".jpeg")
SHOWN_SKIPPED = 3  # skipped files named in the one-line warning; all are in the provenance


def is_folder_dataset(name: str) -> bool:
    """A --dataset value meant as a folder: it has a path separator or names an existing folder."""
    return os.sep in name or bool(os.altsep and os.altsep in name) or Path(name).is_dir()


def find_images(root: Path) -> list[Path]:
    if not root.is_dir():
        raise DataError(f"--dataset {root}: no such folder; pass a folder of .png/.jpg images")
    found = sorted((p for p in root.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file()),
                   key=lambda p: p.relative_to(root).as_posix())
    if not found:
        raise DataError(f"--dataset {root}: no .png or .jpg images in it or its subfolders; "
                        "point --dataset at a folder of images")
    return found


def decode_files(root: Path, files: list[Path], size: int) -> tuple[np.ndarray, dict]:
    """uint8 RGB (N, 3, size, size) of the readable files, and which were skipped and why."""
    out, skipped = [], []
    for path in files:
        try:
            with Image.open(path) as img:
                out.append(images.center_crop_resize(img.convert("RGB"), size))
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
            reason = " ".join(str(exc).replace(str(path), path.name).split()) or type(exc).__name__
            skipped.append({"file": path.relative_to(root).as_posix(), "reason": reason})
    if not out:
        raise DataError(f"--dataset {root}: none of its {len(files)} image files could be read "
                        f"(first: {skipped[0]['file']}: {skipped[0]['reason']}); "
                        "replace them with valid .png/.jpg files")
    return np.stack(out), {"skipped": skipped, "files_found": len(files)}


def skipped_warning(root: Path, skipped: list[dict], total: int) -> str | None:
    if not skipped:
        return None
    shown = ", ".join(f"{s['file']} ({s['reason']})" for s in skipped[:SHOWN_SKIPPED])
    more = f" and {len(skipped) - SHOWN_SKIPPED} more" if len(skipped) > SHOWN_SKIPPED else ""
    return (f"{root}: skipped {len(skipped)} of {total} image files that could not be read: "
            f"{shown}{more} (all listed in results.json under dataset.skipped)")


def load_folder(path, preset, cache_dir: Path, decoded: dict | None = None):
    """(uint8 images at the preset's size and channels, provenance). With `decoded` (in a child of
    run_all.py) the parent's decoded file instead, so every backend trains on identical pixels."""
    root = Path(path).expanduser().resolve()
    in_child = decoded is not None  # the parent has already warned about skipped files
    if in_child:
        arr, info = images.load_decoded(decoded)
    else:
        files = find_images(root)
        stats = [(p.relative_to(root).as_posix(), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
        key = images.cache_key(kind="folder", root=str(root), files=stats, size=preset.image_size)
        arr, info, decoded = images.decode_cached(
            Path(cache_dir) / f"folder-{key}.npy",
            lambda: decode_files(root, files, preset.image_size))
    warning = skipped_warning(root, info["skipped"], info["files_found"])
    if warning and not in_child:
        log.warning("%s", warning)
    arr = images.to_channels(arr, preset.channels, f"--dataset {root}")
    return arr, {"source": {"path": str(root), "files_found": info["files_found"], "decoded": decoded,
                            "filter": images.RESIZE_FILTER},
                 "skipped": info["skipped"], "warning": warning}
