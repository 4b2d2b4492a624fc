"""Every call from the harness into the results report (markdown, figures, tables, comparison)
is here, so a change in common/results is one place to follow."""
from __future__ import annotations

import sys
from pathlib import Path

from common.harness.runfolder import load_run, rel
from common.results import compare, markdown, tables


def finish_run(run_dir: Path, results: dict, figures: bool = True) -> bool:
    """Write a finished run's report (with its figures unless `figures` is False) and print its
    table; False if the report failed (its results.json is already safe)."""
    try:
        markdown.write_report(run_dir, results, figures)
    except Exception as exc:  # noqa: BLE001 - results.json is already safe; say what failed
        print(f"run_all.py: writing the report failed ({type(exc).__name__}: {exc}); "
              f"results are in {rel(run_dir / 'results.json')}", file=sys.stderr)
        return False
    print(tables.stdout_table(results))
    print(f"\nresults: {rel(run_dir / 'results.json')}  report: {rel(run_dir / 'report.md')}")
    return True


def how_to_go_on(run_dir: Path, results: dict, signal_name: str) -> None:
    """The last lines of an interrupted run: what stopped, and the command that goes on."""
    runs = results["backends"]
    stopped = [f"{n} after {r.get('iterations_done', 0)} iterations" for n, r in runs.items()
               if r["status"] == "interrupted" and r.get("iterations_done")]
    waiting = [n for n, r in runs.items() if r["status"] == "interrupted" and not r.get("iterations_done")]
    print(f"\ninterrupted{f' ({signal_name})' if signal_name else ''}: "
          + "; ".join(filter(None, [", ".join(stopped) and "stopped " + ", ".join(stopped),
                                    waiting and "not run: " + ", ".join(waiting)])))
    taken = any(p.is_dir() for p in run_dir.glob("backends/*/checkpoints/*"))
    note = ("unfinished backends continue from their last checkpoint" if taken else
            "no checkpoint was taken, so unfinished backends start again at iteration 0; "
            "add --checkpoint-every N to a run to keep its progress")
    print(f"to go on: python run_all.py --resume {rel(run_dir)}  ({note})")


def rebuild_report(run_dir: Path) -> int:
    """`--report DIR`: DIR's report rebuilt from its results.json; no training."""
    results = load_run(run_dir)
    written = markdown.write_report(run_dir, results)
    print(tables.stdout_table(results))
    print(f"\nreport: {rel(run_dir / 'report.md')} ({len(written)} files rewritten)")
    return 0


def compare_runs(dir_a: Path, dir_b: Path) -> int:
    """`--compare DIR_A DIR_B`: what changed from one run to the other."""
    print(compare.compare_runs(load_run(dir_a), load_run(dir_b)))
    return 0
