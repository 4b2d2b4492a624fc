"""The results.json schema: its version (the one place it is defined) and the reader; and the
columns of a backend's losses.csv, which the step log writes and the tables read.

Version 2: "backends" is keyed by label ('jax', or 'jax@newest' for a backend run in another
Python environment, so one backend may appear more than once); every row holds "backend" (the
plain name) and "environment" (interpreter, python, "packages" with the versions that matter,
"packages_hash" of the full package list, and the environment's name or null). Version 1 keyed
rows by the plain name and recorded the packages once, in "provenance". A reader accepts every
version up to SCHEMA_VERSION and gives each row its "backend" (a version-1 key is the name); a
file written by a newer dcgan-bench is refused with a one-line reason. tests/unit/test_schema.py
reads a committed version-1 file (tests/fixtures/results-v1.json).
"""
from __future__ import annotations

import json
from pathlib import Path

SCHEMA_VERSION = 2

# A backend's losses.csv (common/harness/steplog.py writes it, common/results reads it).
LOSS_COLUMNS = ("backend", "iteration", "loss_d", "loss_g", "step_seconds")
# The headline losses: mean and std over the last 10% of iterations (at least one). A GAN's
# last-step losses swing by several times between steps; the tail mean says where training is.
TAIL_FRACTION = 0.1


def load_results(path: Path, schema_version: int | None = SCHEMA_VERSION) -> dict:
    """A run's results.json. Anything that is not one raises ValueError with a one-line reason
    (never another error: the file may be damaged or not ours), as does a schema newer than
    `schema_version` (what this dcgan-bench writes)."""
    raw = Path(path).read_bytes()
    try:
        results = json.loads(raw)  # bytes: UTF-8/16/32 detected; bad text is a ValueError
    except RecursionError:
        raise ValueError("JSON nested too deeply to be a results file") from None
    if not isinstance(results, dict):
        raise ValueError(f"top level is a JSON {type(results).__name__}, not a results object")
    version = results.get("schema_version")
    if type(version) is not int or version < 1:
        raise ValueError(f"no valid schema_version (got {str(version)[:40]!r})")
    if schema_version is not None and version > schema_version:
        raise ValueError(f"written by a newer dcgan-bench (results schema version {version}, this "
                         f"one reads up to {schema_version}); upgrade dcgan-bench to use it")
    for key in ("config", "backends"):
        if not isinstance(results.get(key), dict):
            raise ValueError(f"no {key!r} object")
    if not all(isinstance(r, dict) for r in results["backends"].values()):
        raise ValueError("a backend's entry is not an object")
    for label, row in results["backends"].items():  # version 1: the key is the plain name
        row.setdefault("backend", label.partition("@")[0])
    for run in seed_runs(results):
        for r in run.values() if isinstance(run, dict) else ():
            if isinstance(r, dict):
                time_to_target(r)  # optional; malformed: ValueError
    return results


def seed_runs(results: dict) -> list[dict]:
    """Every training seed's backend results: the first seed's ("backends"), then by_seed's."""
    return [results["backends"], *(results.get("by_seed") or {}).values()]


# A backend's "time_to_target" (runs with --target-fd; optional, absent from older results and
# from runs without it): {"target_fd": F, "reached": bool, "iterations": N | None,
# "seconds": S | None}, iterations and seconds None exactly when not reached.
def time_to_target(result: dict) -> dict | None:
    """A backend result's time to target, or None where it has none; ValueError (one line) if
    it is there but malformed."""
    ttt = result.get("time_to_target")
    if ttt is None:
        return None
    number = (int, float)
    ok = (isinstance(ttt, dict) and isinstance(ttt.get("target_fd"), number)
          and isinstance(ttt.get("reached"), bool))
    if ok and ttt["reached"]:
        ok = isinstance(ttt.get("iterations"), int) and isinstance(ttt.get("seconds"), number)
    elif ok:
        ok = ttt.get("iterations") is None and ttt.get("seconds") is None
    if not ok:
        raise ValueError(f"{result.get('backend', 'a backend')}'s time_to_target is not "
                         f"{{target_fd, reached, iterations, seconds}}: {str(ttt)[:80]}")
    return ttt


def label_folder(label: str) -> str:
    """The folder name of a row's files under backends/ (and in file names): the label, with an
    interpreter path's separators made one name ('jax@/opt/py/bin/python' -> 'jax@opt_py_bin_python')."""
    name, at, env = label.partition("@")
    return name + at + env.strip("/").replace("/", "_")


def row_packages(results: dict, label: str) -> dict:
    """The package versions a row ran with: its own environment's (version 2), else the run's
    provenance (version 1, where every backend ran in the parent's environment)."""
    row = results["backends"].get(label) or {}
    return ((row.get("environment") or {}).get("packages")
            or (results.get("provenance") or {}).get("packages") or {})
