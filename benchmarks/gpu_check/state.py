"""The GPU check's state: its folder, its deadline, its records (summary.json, rewritten after
every step and cell), and the processes it runs within the budget."""
from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.gpu_check import summary
from common import atomic

REPO = Path(__file__).resolve().parents[2]

# What `git add` of the results folder leaves out, written there as its .gitignore (and what
# tools/gpu_session.sh leaves out of the tarball it brings back): the cells' run folders and the
# main job's weights and samples, hundreds of MB at dcgan64; everything the summary, the tables
# and the report read stays. One pattern a line, each also a valid `tar --exclude-from` pattern.
HEAVY_OUTPUTS = "work\n*.npz\n*.npy\n"
BUDGET = "stopped: budget"  # a process the deadline stopped


def outcome(rc: int | None, ok: bool = True) -> str:
    """A step's (or cell's) status from its process: 'stopped: budget' where the deadline
    stopped it (rc None), 'ok' where it exited 0 and `ok` holds (its output is there), else
    'failed'."""
    return BUDGET if rc is None else "ok" if rc == 0 and ok else "failed"


class Check:
    """The run's state: the deadline, the summary, and the folder it is written to."""

    def __init__(self, args, out: Path, earlier: dict | None = None):
        """earlier: the summary of the check this run continues (--resume), else None."""
        self.args, self.out = args, out
        self.deadline = time.monotonic() + 60 * args.budget
        run = {"command": "python -m benchmarks.gpu_check " + " ".join(sys.argv[1:]), "budget_minutes": args.budget,
               "started": dt.datetime.now().astimezone().isoformat(timespec="seconds")}
        self.doc = earlier or {"device": args.device, "smoke": args.smoke, "steps": {}, "grid": [], "runs": []}
        self.run_no = len(self.doc["runs"]) + 1
        self.suffix = "" if self.run_no == 1 else f"-r{self.run_no}"  # this run's files, beside earlier runs'
        self.doc["runs"].append(dict(run=self.run_no, **run))
        self.doc.update(run, status="running")
        for stale in ("not_run", "finished"):
            self.doc.pop(stale, None)

    def finished(self, name: str) -> bool:
        """Whether an earlier run finished step `name` and it passed: a resumed check keeps it."""
        return self.doc["steps"].get(name, {}).get("status") == "ok"

    def cell_done(self, row: dict) -> bool:
        """Whether an earlier run measured this grid cell, or skipped it with why: kept."""
        return any(r.get("status") in ("ok", "skipped") for r in self.doc["grid"] if same_cell(r, row))

    def record_cell(self, row: dict) -> None:
        """Records a cell, in place of an earlier run's unfinished row of it."""
        grid = self.doc["grid"]
        at = next((i for i, r in enumerate(grid) if same_cell(r, row)), None)
        if at is None:
            grid.append(row)
        elif "not run" not in row["status"]:  # else the earlier row says more
            self._supersede(grid[at], "grid " + summary.cell_label(row))
            grid[at] = row
        self.save()

    def _supersede(self, earlier: dict | None, label: str) -> None:
        """An earlier run's record that this run measures again is kept in `replaced` (one that
        says 'not run' holds nothing to keep)."""
        if earlier and earlier.get("run", 1) != self.run_no and "not run" not in str(earlier.get("status")):
            self.doc.setdefault("replaced", []).append(dict(earlier, step=label))

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def save(self) -> None:
        atomic.write_json(self.out / "summary.json", self.doc)
        atomic.write_text(self.out / "summary.md", summary.render(self.doc))

    def step(self, name: str, record: dict) -> None:
        self._supersede(self.doc["steps"].get(name), name)
        self.doc["steps"][name] = dict(record, run=self.run_no)
        self.save()

    def run(self, cmd: list[str], log: str, env: dict | None = None) -> tuple[int | None, float]:
        """cmd in the repo, stdout+stderr to OUT/logs/log, killed at the deadline; (rc, seconds),
        rc None when the budget stopped it."""
        (self.out / "logs").mkdir(exist_ok=True)
        t0 = time.monotonic()
        with open(self.out / "logs" / log, "w") as f:
            proc = subprocess.Popen(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT,
                                    env=dict(os.environ, **(env or {})), start_new_session=True)
            try:
                rc = proc.wait(timeout=max(1.0, self.left()))
            except subprocess.TimeoutExpired:
                rc = None
            except KeyboardInterrupt:
                stop(proc)
                raise
            if rc is None:
                stop(proc)
        return rc, round(time.monotonic() - t0, 1)


def same_cell(a: dict, b: dict) -> bool:
    return (a["backend"], a["config"], a["batch"]) == (b["backend"], b["config"], b["batch"])


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the step's process group (the harness ends its child like Ctrl-C), then SIGKILL."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    import benchmarks
    raise SystemExit(benchmarks.internal_entry("benchmarks.gpu_check.state", "the GPU check's folder, budget and records", "benchmarks.gpu_check -h"))
