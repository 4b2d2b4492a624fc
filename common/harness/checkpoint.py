"""Checkpoints of one backend's training, framework-free: folders, manifests, verification.

A checkpoint is one folder `checkpoints/iter-<i>/` (i = iterations done = the next iteration to
run: the data order and z of iteration i depend on (seed, i) alone, so i is also the data-order
position). The backend writes its framework's native files into a temporary folder, the
canonical weights go beside them, and `manifest.json` is written last with the sha256 of every
file; then the folder is renamed into place. A kill at any moment leaves either no folder, a
temporary one (ignored, removed by the next save), or a complete one. The loader still verifies
every checksum before the backend reads anything (MXNet's optimizer file is a pickle), and
falls back to the newest checkpoint that verifies, saying why it skipped the others.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from common import atomic
from common.data.download import file_digest
from common.errors import DataError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
KEEP = 2  # the newest checkpoint and one before it (the fallback if the newest is damaged)
_NAME = re.compile(r"iter-(\d+)")
# Child-config entries that do not change what training computes (or are paths that move with
# the run folder): excluded from the config hash.
_NOT_HASHED = {"quiet", "out_dir", "init_weights", "verbose", "timeout", "quality", "resume",
               "checkpoint_every"}
# Options added after checkpoints existed: hashed only when not at this default, so a checkpoint
# written before them (whose config lacks them) still resumes.
_HASHED_WHEN_SET = {"compile_mode": "default", "onednn": False, "hostfile": None}
# The multi-host options in the backend's options (never checkpointed: --checkpoint-every is
# refused with --nodes): hashed only when set, there only (the top level's rdzv_endpoint always was).
_OPTIONS_HASHED_WHEN_SET = ("rdzv_endpoint", "node_rank", "host_timeout")


class CheckpointError(DataError):
    """A checkpoint that must not be loaded: newer format, or made for another configuration."""


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    iteration: int
    manifest: dict


def config_hash(config: dict) -> str:
    """sha256 of what determines the training (backend, preset, data, seed, batch, options)."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in _NOT_HASHED
                    and not (k in _HASHED_WHEN_SET and v == _HASHED_WHEN_SET[k])}
        return value
    data = dict(strip(config), dataset={"name": config.get("dataset", {}).get("name")})
    if isinstance(data.get("options"), dict):
        data["options"] = {k: v for k, v in data["options"].items()
                           if not (k in _OPTIONS_HASHED_WHEN_SET and v is None)}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()




def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def save(root: Path, iteration: int, write, config: dict, harness: dict | None = None) -> Path:
    """Write checkpoint `iteration` under `root` (the backend's checkpoints/ folder).

    write(folder) writes the backend's files into the (temporary) folder. harness: JSON state
    of the harness to carry over (the quality curve so far, training seconds)."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"iter-{iteration:06d}"
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        write(tmp)
        files = _files(tmp)
        for f in files:  # on disk before the manifest says they are
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        manifest = {"format_version": FORMAT_VERSION, "iteration": iteration,
                    "config_hash": config_hash(config), "backend": config.get("backend"),
                    "files": {str(f.relative_to(tmp)): file_digest(f, "sha256") for f in files},
                    "harness": harness or {}}
        atomic.write_json(tmp / MANIFEST, manifest)
        if final.exists():  # a torn or older copy of this iteration (an earlier attempt)
            shutil.rmtree(final)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _prune(root)
    return final


def _prune(root: Path) -> None:
    """Keep the newest KEEP checkpoints; remove older ones and leftover temporary folders."""
    for old in checkpoints(root)[KEEP:]:
        shutil.rmtree(old[1], ignore_errors=True)
    for tmp in root.glob(".iter-*.tmp"):
        shutil.rmtree(tmp, ignore_errors=True)


def checkpoints(root: Path) -> list[tuple[int, Path]]:
    """(iteration, folder) of every checkpoint folder, newest first (not verified)."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir()
             if p.is_dir() and (m := _NAME.fullmatch(p.name))]
    return sorted(found, reverse=True)


def verify(folder: Path, config: dict) -> Checkpoint:
    """The checkpoint in `folder` if its manifest and every checksum hold. Raises ValueError
    saying what is wrong (torn: skip it), or CheckpointError (must not be used by this run)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        version, iteration = int(manifest["format_version"]), int(manifest["iteration"])
        files = dict(manifest["files"])
    except FileNotFoundError:
        raise ValueError("no manifest (written last: the save did not finish)") from None
    except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as exc:
        raise ValueError(f"unreadable manifest ({type(exc).__name__})") from None
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{folder}: checkpoint format version {version} is newer than this "
                              f"dcgan-bench's ({FORMAT_VERSION}); upgrade dcgan-bench to resume it")
    if manifest.get("config_hash") != config_hash(config):
        raise CheckpointError(f"{folder}: checkpoint was made with a different configuration; "
                              "resume it with the run's own stored configuration")
    on_disk = {str(f.relative_to(folder)) for f in _files(folder)}
    if set(files) != on_disk:
        raise ValueError(f"files differ from the manifest ({sorted(set(files) ^ on_disk)[:3]})")
    for name, digest in files.items():
        if file_digest(folder / name, "sha256") != digest:
            raise ValueError(f"{name} does not match its sha256 (torn or changed)")
    return Checkpoint(folder, iteration, manifest)


def latest(root: Path, config: dict, warn=None) -> Checkpoint | None:
    """The newest checkpoint under `root` that verifies; torn ones are skipped with a warning."""
    warn = warn or (lambda msg: print(msg, file=sys.stderr, flush=True))
    for _, folder in checkpoints(root):
        try:
            return verify(folder, config)
        except CheckpointError:
            raise
        except ValueError as exc:
            warn(f"checkpoint {folder.name} skipped: {exc}")
    return None


def truncate_losses(csv_path: Path, iteration: int) -> None:
    """Keep the loss CSV's header and its complete rows of iterations before `iteration`
    (a killed run may have logged past its last checkpoint, or half a line); atomic."""
    if not csv_path.exists():
        return
    lines = csv_path.read_text(errors="replace").split("\n")
    kept = lines[:1]
    for line in lines[1:-1]:  # the part after the last newline is incomplete (or empty)
        fields = line.split(",")
        try:
            if len(fields) == 5 and int(fields[1]) < iteration:
                kept.append(line)
        except ValueError:
            continue
    atomic.write_text(csv_path, "\n".join(kept) + "\n" if kept and kept[0] else "")
