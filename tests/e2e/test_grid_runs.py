"""tools/grid_runs.py: each run's img/s added to an older grid from its run folders, checked."""
from __future__ import annotations

import json

import pytest

from common.results import schema
from tools import grid_runs


def _grid(tmp_path, bare_steps):
    work = tmp_path / "work"
    for k, (spec, fast) in enumerate([(100.0, 150.0), (80.0, 120.0), (100.0, 130.0)], start=1):
        for label, img_s in (("spec", spec), ("channels_last-bf16", fast)):
            d = work / f"pytorch-{label}-b64-r{k}"
            d.mkdir(parents=True)
            (d / "results.json").write_text(json.dumps(
                {"schema_version": schema.SCHEMA_VERSION, "config": {},
                 "backends": {"pytorch": {"status": "ok", "summary": {"img_per_s_median": img_s}}}}))
        d = work / f"pytorch-bare-b64-r{k}"
        d.mkdir(parents=True)
        (d / "bare.json").write_text(json.dumps({"step_seconds": bare_steps[k - 1],
                                                 "peak_memory": {"bytes": 1, "kind": "rss"}}))
    rows = [{"backend": "pytorch", "config": "spec (float32)", "batch": 64, "status": "ok",
             "img/s": 100.0, "range across runs": "80.0-100.0", "first step s": 0.1},
            {"backend": "pytorch", "config": "channels_last+bf16", "batch": 64, "status": "ok",
             "img/s": 130.0, "range across runs": "120.0-150.0", "first step s": 0.1},
            {"backend": "pytorch", "config": "bare loop", "batch": 64, "status": "ok",
             "img/s": 64.0, "range across runs": "32.0-64.0", "first step s": 0.1}]
    return {"args": {"repeats": 3}, "rows": rows}, work


def test_runs_come_from_the_folders_and_pair_fast_paths_with_spec(tmp_path):
    # bare: a slow first step (warm-up, left out as the grid leaves it out), then 1 s or 2 s steps
    doc, work = _grid(tmp_path, [[9.0, 1.0, 1.0, 1.0], [9.0, 2.0, 2.0, 2.0], [9.0, 1.0, 1.0, 1.0]])
    rows = grid_runs.add_runs(doc, work)
    assert [r["img/s per run"] for r in rows] == [[100.0, 80.0, 100.0], [150.0, 120.0, 130.0], [64.0, 32.0, 64.0]]
    assert list(rows[0])[:6] == ["backend", "config", "batch", "status", "img/s", "range across runs"]
    assert list(rows[0])[6] == "img/s per run"  # beside the range it explains
    # per pass 1.50, 1.50, 1.30: not the 1.30 the cells' medians (130 over 100) would give
    assert rows[1]["speed / spec"] == "1.50x (1.30-1.50)" and "speed / spec" not in rows[0]


def test_a_folder_that_disagrees_with_the_published_cell_stops_it(tmp_path):
    doc, work = _grid(tmp_path, [[9.0, 1.0, 1.0, 1.0], [9.0, 1.0, 1.0, 1.0], [9.0, 1.0, 1.0, 1.0]])
    with pytest.raises(ValueError, match="bare loop batch 64: the run folders give"):
        grid_runs.add_runs(doc, work)  # all bare runs at 64 img/s: the published range says 32-64
