"""The parity tests' comparisons as numbers (common/results/parity_record.py): assert_within
records each one to the file DCGAN_BENCH_PARITY_RECORD names, and writes nothing without it."""
from __future__ import annotations

import json

import numpy as np
import pytest

from common.results import parity_record
from tests.support.tolerances import FORWARD, GRADIENTS, assert_within


def test_a_comparison_is_recorded_only_where_the_variable_names_a_file(tmp_path, monkeypatch):
    monkeypatch.delenv(parity_record.RECORD_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert_within(FORWARD, "G", np.array([1.0, 2.0]), np.array([1.0, 2.0 + 3e-6]), 1e-5, 2.0)
    assert list(tmp_path.iterdir()) == []  # unset: nothing written anywhere

    path = tmp_path / "record.jsonl"
    monkeypatch.setenv(parity_record.RECORD_ENV, str(path))
    assert_within(FORWARD, "G", np.array([1.0, 2.0]), np.array([1.0, 2.0 + 3e-6]), 1e-5, 2.0)
    # a slack (the gradient test's kink allowance) is taken off before the difference is kept
    assert_within(GRADIENTS, "D.conv1.weight", np.array([0.5, 0.0]), np.array([0.0, 0.0]), 1e-4, 1.0,
                  slack=np.array([0.5, 0.0]))
    with pytest.raises(AssertionError, match="forward D: max .* 0.001 over 1e-05"):
        assert_within(FORWARD, "D", np.zeros(3), np.array([0.0, 1e-3, 0.0]), 1e-5)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["kind"], r["what"]) for r in lines] == [(FORWARD, "G"), (GRADIENTS, "D.conv1.weight"), (FORWARD, "D")]
    assert lines[0]["max_abs"] == pytest.approx(3e-6, rel=1e-6)
    assert lines[0]["max_rel"] == pytest.approx(1.5e-6, rel=1e-6) and lines[0]["tolerance"] == 1e-5
    assert lines[1]["max_abs"] == 0.0  # inside the slack
    assert lines[2]["max_rel"] == pytest.approx(1e-3)  # a failing comparison is recorded too
    assert "test_a_comparison_is_recorded_only" in lines[0]["test"]


def test_the_summary_keeps_per_kind_the_comparison_closest_to_its_tolerance(tmp_path):
    path = tmp_path / "record.jsonl"
    rows = [{"kind": "forward", "what": "G", "max_abs": 4e-6, "max_rel": 4e-6, "tolerance": 1e-5},
            {"kind": "forward", "what": "D", "max_abs": 2e-5, "max_rel": 5e-6, "tolerance": 1e-5},
            {"kind": "gradients", "what": "loss_d", "max_abs": 9e-6, "max_rel": 9e-6, "tolerance": 1e-5},
            {"kind": "gradients", "what": "D.conv1.weight", "max_abs": 1e-5, "max_rel": 2e-5, "tolerance": 1e-4}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"kind": "forw')  # a torn last line
    summary = parity_record.summarise(parity_record.read(path))
    assert list(summary) == ["forward", "gradients"]
    assert (summary["forward"]["what"], summary["forward"]["max_rel"], summary["forward"]["comparisons"]) == ("D", 5e-6, 2)
    # by margin, not by size: 9e-6 of 1e-5 is closer to its bound than 2e-5 of 1e-4
    assert summary["gradients"]["what"] == "loss_d"
    assert parity_record.tightest(summary)[0] == "gradients"
    assert parity_record.read(tmp_path / "missing.jsonl") == [] and parity_record.tightest({}) is None
