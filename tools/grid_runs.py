"""Add each run's img/s to a throughput grid measured before the grid kept them (git 7194157 and
earlier), from the grid's own run folders, with what they give: `speed / spec` (every fast path
against spec, paired per repeat) and, for a grid of one batch size, the runs figure.

    python -m tools.grid_runs benchmarks/results/<folder> <the grid's --work folder>

Every run's img/s is read exactly as the grid read it (a harness run's results.json summary; a
bare loop's step times through the same summary) and checked against the median and range the
grid published; a mismatch stops with nothing written. The document says what was added, by
which commit.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from benchmarks import grid_output, throughput
from common import atomic, sysinfo
from common.results import schema


def run_img_s(work: Path, row: dict, repeats: int) -> list[float | None]:
    """Each repeat's img/s of one cell, in pass order (None for a failed run), read from the run
    folders the grid named and as the grid read them."""
    out = []
    for k in range(1, repeats + 1):
        cell = throughput.run_folder(work, row["backend"], row["config"], row["batch"], k)
        if (cell / "bare.json").exists():
            out.append(throughput.bare_summary(cell, row["batch"])[1]["img_per_s_median"])
        elif (cell / "results.json").exists():
            r = schema.load_results(cell / "results.json")["backends"][row["backend"]]
            out.append(r["summary"]["img_per_s_median"] if r["status"] == "ok" else None)
        else:
            out.append(None)
    return out


def add_runs(doc: dict, work: Path) -> list[dict]:
    """The grid's rows with `img/s per run` after `range across runs` (and `_run_img_s` for the
    pairings); raises ValueError where a run folder disagrees with the published cell."""
    rows = []
    for r in doc["rows"]:
        if r["status"] != "ok":
            rows.append(dict(r))
            continue
        runs = run_img_s(work, r, doc["args"]["repeats"])
        ok = [x for x in runs if x is not None]
        if not ok or (round(float(np.median(ok)), 1), f"{min(ok):.1f}-{max(ok):.1f}") != (
                r["img/s"], r["range across runs"]):
            raise ValueError(f"{r['backend']} {r['config']} batch {r['batch']}: the run folders give "
                             f"{runs}, the grid published {r['img/s']} ({r['range across runs']}); "
                             "give the grid's own --work folder")
        new = {}
        for key, value in r.items():
            new[key] = value
            if key == "range across runs":
                new["img/s per run"] = [None if x is None else round(x, 1) for x in runs]
        rows.append(dict(new, _run_img_s=runs))
    throughput.add_spec_comparison(rows)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.grid_runs", description=__doc__.split("\n\n")[0])
    p.add_argument("grid", type=Path, help="the grid's results folder (throughput.json inside)")
    p.add_argument("work", type=Path, help="the grid's --work folder (its run folders)")
    args = p.parse_args(argv)
    try:
        doc = json.loads((args.grid / "throughput.json").read_text())
    except (ValueError, OSError) as exc:
        print(f"tools.grid_runs: {args.grid}: no readable throughput.json ({exc}); give a grid's "
              "results folder", file=sys.stderr)
        return 1
    if any("img/s per run" in r for r in doc["rows"]):
        print(f"tools.grid_runs: {args.grid} already has each run's img/s", file=sys.stderr)
        return 2
    had_pairs = any("speed / spec" in r for r in doc["rows"])  # grids since git 7194157 have them
    try:
        rows = add_runs(doc, args.work)
    except (ValueError, OSError) as exc:
        print(f"tools.grid_runs: {exc}", file=sys.stderr)
        return 1
    commit = sysinfo.git_state()["commit"]
    doc["rows"] = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    one_batch = len({r["batch"] for r in rows if r["status"] == "ok"}) == 1
    doc["redrawn"] = (f"`img/s per run`{'' if had_pairs else ' and `speed / spec`'} added from the "
                      f"grid's run folders by git {commit} (python -m tools.grid_runs, every run "
                      "checked against the cell's median and range)"
                      + ("; the runs figure drawn" if one_batch else ""))
    if one_batch:  # a figure against batch size is unchanged by this and needs data not kept
        grid_output.runs_figure(doc, rows, args.grid / "scaling.png")
    atomic.write_json(args.grid / "throughput.json", doc)
    atomic.write_text(args.grid / "throughput.md", grid_output.render(doc))
    print(f"tools.grid_runs: {args.grid}: {sum('img/s per run' in r for r in rows)} cells")
    return 0


if __name__ == "__main__":
    sys.exit(main())
