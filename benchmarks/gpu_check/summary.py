"""The GPU check's summary: summary.md rendered from summary.json, an earlier check's summary
read back to continue it (--resume), and the parity step's counts from pytest's junit xml. A check continued with
--resume has several runs: each step and grid cell then says which run measured it."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from benchmarks import peak
from common.results.tables import table


def load(out: Path, device: str, smoke: bool) -> tuple[dict | None, str]:
    """(the summary of the check in `out`, "") or (None, why it cannot be continued)."""
    try:
        doc = json.loads((out / "summary.json").read_text())
        doc["steps"], doc["grid"]  # noqa: B018  (a check's summary has both)
    except (OSError, ValueError, KeyError, TypeError) as e:
        return None, f"not a GPU check's results folder (no readable summary.json: {e})"
    if (doc.get("device"), doc.get("smoke")) != (device, smoke):
        return None, f"it ran with --device {doc.get('device')}{' --smoke' if doc.get('smoke') else ''}; resume it so"
    doc.setdefault("runs", [{"run": 1, **{k: doc.get(k) for k in ("command", "started", "budget_minutes", "finished")}}])
    return doc, ""


def cell_label(row: dict) -> str:
    """A grid cell as the summary names it: 'pytorch best b256'."""
    return f"{row['backend']} {row['config']} b{row['batch']}"


# Why a cell has no number, or no joules, goes under its table, not in a column: a long reason
# pads every row of it (the terminal and the device tool show the output's end).
NOTES = ("reason", "power")


def grid_notes(grid: list[dict]) -> list[str]:
    """'- cells: note' lines, each note once with the cells it is about."""
    cells: dict[str, list[str]] = {}
    for r in grid:
        for k in NOTES:
            if r.get(k):
                cells.setdefault(r[k], []).append(cell_label(r))
    return [f"- {', '.join(names)}: {note}" for note, names in cells.items()]


def junit_counts(path: Path) -> dict:
    """{'passed': n, 'failed': n, 'skipped': n, 'failures': [test ids]} from pytest's junit xml."""
    if not path.exists():
        return {}
    counts = {"passed": 0, "failed": 0, "skipped": 0, "failures": [], "skips": {}}
    for case in ET.parse(path).getroot().iter("testcase"):
        test_id = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            counts["failed"] += 1
            counts["failures"].append(test_id)
        elif case.find("skipped") is not None:
            counts["skipped"] += 1
            reason = (case.find("skipped").get("message") or "")[:200]
            counts["skips"][reason] = counts["skips"].get(reason, 0) + 1
        else:
            counts["passed"] += 1
    return counts


def render(doc: dict) -> str:
    steps, runs = doc["steps"], doc.get("runs", [])
    several = len(runs) > 1

    def which(record: dict) -> str:  # "run 2, " where runs differ
        return f"run {record.get('run', 1)}, " if several else ""

    lines = [f"# GPU check ({'smoke, ' if doc['smoke'] else ''}device {doc['device']}): {doc['status']}", ""]
    for run in runs if several else runs[-1:]:
        label = f"Run {run['run']}: " if several else ""
        finished = f", finished {run['finished']}" if run.get("finished") else ""
        lines.append(f"{label}`{run['command']}` started {run['started']}, budget {run['budget_minutes']} min{finished}.")
    lines.append("")
    machine = steps.get("probe", {}).get("machine", {})
    for gpu in machine.get("gpus", []):
        lines.append(f"GPU: {gpu.get('name')}, driver {gpu.get('driver_version')}, "
                     f"CUDA (driver) {machine.get('driver_cuda')}, {gpu.get('memory.total')} MiB")
    if not machine.get("gpus"):
        lines.append("GPU: none seen by nvidia-smi")
    probe_rows = [{"backend": b["backend"], "status": b.get("status"), "version": b.get("version", ""),
                   "devices": ", ".join(map(str, b.get("devices", []))),
                   "build": ", ".join(f"{k}={v}" for k, v in (b.get("build") or {}).items()),
                   "GPU": "yes" if b.get("sees_gpu") else (b.get("gpu_reason") or b.get("reason") or "")}
                  for b in steps.get("probe", {}).get("backends", [])]
    if probe_rows:
        lines += ["", "## Backends", "", table(probe_rows, "github")]
    parity = steps.get("parity")
    if parity:
        lines += ["", f"## Parity on the device: {parity['status']} ({which(parity)}{parity.get('passed', 0)} passed, "
                      f"{parity.get('failed', 0)} failed, {parity.get('skipped', 0)} skipped, {parity['seconds']} s)"]
        lines += [f"- failed: {t}" for t in parity.get("failures", [])]
        lines += [f"- skipped {n}x: {reason}" for reason, n in parity.get("skips", {}).items()]
    main = steps.get("main")
    if main:
        lines += ["", f"## Main job: {main['status']} ({which(main)}{main['seconds']} s)", ""]
        rows = [dict(backend=k, **{c: v for c, v in r.items() if c != "final_losses"})
                for k, r in main.get("backends", {}).items()]
        lines.append(table(rows, "github") if rows else "no results.json")
    measured = steps.get("peak")
    if measured:
        lines += ["", f"## Measured peak: {measured['status']} ({which(measured)}{measured['seconds']} s)", "",
                  peak.describe(measured.get("peaks", {})) or "not measured: see logs/peak.log"]
    if doc["grid"]:
        rows = [{k: v for k, v in r.items() if k not in NOTES and (several or k != "run")} for r in doc["grid"]]
        lines += ["", f"## Throughput grid ({doc['device']}; first step = compile and autotune, apart)", "",
                  table(rows, "github"), "", *grid_notes(doc["grid"])]
    quality = steps.get("quality")
    if quality:
        lines += ["", f"## Best against spec in sample quality: {quality['status']} ({which(quality)}"
                      f"{quality['seconds']} s; best trained as the main job, {quality.get('spec')}/, trained spec)"]
        if "rows" in quality:  # else not run
            lines += ["", table(quality["rows"], "github") if quality["rows"] else "no backend has fast paths here"]
    if doc.get("not_run"):
        lines += ["", "Not run: " + ", ".join(doc["not_run"])]
    if doc.get("replaced"):
        lines += ["", "Measured again by a later run (summary.json `replaced`): " +
                  ", ".join(f"{r['step']} (run {r.get('run', 1)}: {r.get('status')})" for r in doc["replaced"])]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import benchmarks
    raise SystemExit(benchmarks.internal_entry("benchmarks.gpu_check.summary", "the GPU check's summary (--resume reads it)", "benchmarks.gpu_check -h"))
