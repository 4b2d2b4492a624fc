"""The results reader keeps reading what earlier versions wrote: a committed version-1 file."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.results import schema

V1 = Path(__file__).resolve().parents[1] / "fixtures" / "results-v1.json"  # written by run_all.py at 2518fef


def test_version_1_file_is_read():
    results = schema.load_results(V1)
    assert results["schema_version"] == 1 <= schema.SCHEMA_VERSION
    assert list(results["backends"]) == ["pytorch", "tensorflow", "mxnet", "chainer"]
    assert all(r["status"] == "ok" and r["iterations_done"] == 40 for r in results["backends"].values())


def test_version_1_file_renders_a_report(tmp_path):
    from common.results import tables
    table = tables.stdout_table(schema.load_results(V1))
    assert all(name in table for name in ("pytorch", "tensorflow", "mxnet", "chainer"))


def test_newer_schema_is_refused_in_one_line(tmp_path):
    newer = json.loads(V1.read_text())
    newer["schema_version"] = schema.SCHEMA_VERSION + 1
    (tmp_path / "results.json").write_text(json.dumps(newer))
    with pytest.raises(ValueError, match="newer dcgan-bench") as info:
        schema.load_results(tmp_path / "results.json")
    assert "\n" not in str(info.value)
