"""The run folder: a new one for each run (never overwritten), and a finished one read back."""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from common.options import UsageError
from common.results import schema

REPO = Path(__file__).resolve().parents[2]


def check_out(out: str | None) -> None:
    """--out refused before any data is touched: it exists, or cannot be created."""
    if not out:
        return
    path = Path(out)
    if path.exists():
        raise UsageError(f"--out {path} already exists; choose a new folder (runs are never "
                         "overwritten)")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"cannot create run folder {path}: {parent} is not a writable folder; "
                         "pass a writable --out")


def make_run_dir(out: str | None) -> Path:
    if out:
        check_out(out)
        path = Path(out)
    else:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path, n = REPO / "runs" / stamp, 1
        while path.exists():
            path, n = REPO / "runs" / f"{stamp}-{n}", n + 1
    try:
        path.mkdir(parents=True)
    except OSError as exc:
        raise UsageError(f"cannot create run folder {path}: {exc.strerror}; pass a writable --out") from None
    return path


def load_run(run_dir: Path) -> dict:
    """A run folder's results.json (UsageError, one line, if there is none or it is unreadable)."""
    try:
        return schema.load_results(run_dir / "results.json")
    except FileNotFoundError:
        if not run_dir.is_dir():
            raise UsageError(f"{run_dir}: no such folder; pass a run folder made by run_all.py") from None
        raise UsageError(f"{run_dir}: no results.json there; pass a run folder made by run_all.py") from None
    except ValueError as exc:
        raise UsageError(f"{run_dir / 'results.json'}: unreadable ({exc})") from None


def rel(path: Path) -> str:
    """The path as the user sees it: relative to the working folder where it is inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
