"""What the parity tests measured against the float64 oracle, as numbers rather than pass/fail.

When RECORD_ENV names a file, every comparison of the parity tests (tests/support/tolerances.py
assert_within) appends one JSON line to it: the check's kind (forward, gradients, optimizer, one
iteration, weight transfer), what was compared, the largest absolute difference, that difference
relative to the comparison's scale, and the tolerance the relative difference is held to. Unset
(the default), nothing is written. benchmarks/versions.py sets it for each release's parity run
and keeps, per kind, the comparison closest to its tolerance (summarise), so the version table
shows the margin, not only the pass.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

RECORD_ENV = "DCGAN_BENCH_PARITY_RECORD"


def record(kind: str, what: str, max_abs: float, scale: float, tolerance: float) -> None:
    """Append one comparison to the file RECORD_ENV names (nothing when it is unset): max_abs
    the largest |got - ref| (after any allowed slack), scale what the tolerance is relative to,
    tolerance the bound on max_abs / scale."""
    path = os.environ.get(RECORD_ENV)
    if not path:
        return
    test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]
    max_abs = max(0.0, float(max_abs))  # below 0: inside an allowed slack, no difference beyond it
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    line = json.dumps({"kind": kind, "what": what, "test": test, "max_abs": max_abs,
                       "max_rel": max_rel, "tolerance": float(tolerance)}) + "\n"
    # One write of one line in append mode: a kill leaves whole lines, at worst a torn last one,
    # which read() skips (as losses.csv is appended while a run trains).
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def read(path: Path) -> list[dict]:
    """The comparisons recorded in `path` ([] if there is none); a line that is not a whole
    record (a torn last line) is skipped."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and {"kind", "max_rel", "tolerance"} <= set(rec):
            out.append(rec)
    return out


def summarise(records: list[dict]) -> dict[str, dict]:
    """Per kind, in first-seen order: the comparison with the largest difference for its
    tolerance (max_rel / tolerance, the tightest margin) with its max_abs, max_rel, tolerance,
    what and test, and how many comparisons of that kind were made."""
    out: dict[str, dict] = {}
    for rec in records:
        kept = out.get(rec["kind"])
        count = (kept or {}).get("comparisons", 0) + 1
        if kept is None or margin(rec) > margin(kept):
            kept = {k: rec.get(k) for k in ("max_abs", "max_rel", "tolerance", "what", "test")}
        out[rec["kind"]] = dict(kept, comparisons=count)
    return out


def margin(rec: dict) -> float:
    """How much of its tolerance a comparison used (1.0: at the bound)."""
    return rec["max_rel"] / rec["tolerance"] if rec["tolerance"] else float("inf")


def tightest(summary: dict[str, dict]) -> tuple[str, dict] | None:
    """The kind whose largest difference came closest to its tolerance, and its entry."""
    return max(summary.items(), key=lambda item: margin(item[1]), default=None)

