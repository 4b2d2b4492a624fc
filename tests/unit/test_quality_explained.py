"""Quality numbers explained where they appear: one classifier accuracy for docs and report,
KID's units and its negative floor, and the mode-collapse flag."""
from __future__ import annotations

import pytest

from common.metrics import evaluate
from common.results import markdown, tables
from tests.support.processes import REPO


@pytest.mark.slow
def test_the_docs_quote_the_accuracy_the_report_records():
    accuracy = evaluate.held_out_accuracy()
    assert f"{accuracy:.1%}" in (REPO / "docs" / "quality.md").read_text()
    assert evaluate.describe(evaluate.Evaluator())["classifier_accuracy"] == accuracy


def _q(precision, recall, coverage, kid=1.0, density=1.0):
    q = {"fd": 10.0, "kid": kid, "classifier_score": 9.0, "precision": precision, "recall": recall,
         "density": density, "coverage": coverage, "modes_covered": 10, "histogram": [0.1] * 10,
         "kl_to_uniform": 0.01}
    q.update({k + "_std": 0.0 for k in ("fd", "kid", "classifier_score", "precision", "recall",
                                        "density", "coverage")})
    return q


def test_mode_collapse_is_flagged_when_precision_and_density_are_high_and_recall_or_coverage_low():
    floor = _q(0.91, 0.90, 0.95, kid=-0.2)
    results = {"backends": {"collapsed": {"quality": _q(0.996, 0.05, 0.30)},
                            "fine": {"quality": _q(0.85, 0.70, 0.80)},
                            "poor": {"quality": _q(0.30, 0.10, 0.10)},
                            # uniform noise as measured: precise by the classifier's features, not dense
                            "noise": {"quality": _q(0.82, 0.0, 0.011, density=0.53)}},
               "quality_floor": floor}
    notes = {r["samples"]: r["note"] for r in tables.quality_rows(results)}
    assert notes["collapsed"] == "mode collapse? high precision and density, low recall and coverage"
    assert notes["fine"] == "" and notes["poor"] == ""  # poor, but not the collapse pattern
    assert notes["noise"] == ""
    assert notes["real digits (floor)"] == "KID < 0: chance (read as 0)"


def test_the_report_says_kids_units_and_why_the_floor_can_be_negative():
    prose = markdown.PROSE["quality"]
    assert "squared MMD" in prose and "kernel's own units" in prose
    assert "negative" in prose and "mode collapse?" in prose
    assert "KID (MMD²)" in [c for c, _, _ in tables.QUALITY_COLUMNS]
