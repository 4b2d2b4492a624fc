"""Sample quality, judged in the parent (numpy only, in this process: the children's timings are
not disturbed): what the children compute for the evaluator, and the scoring of their samples."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def quality_config(dataset: str, spec, iters: int, every: int | None, n_images: int = 0,
                   decoded: dict | None = None) -> dict | None:
    """What the children compute for the evaluator; None where no evaluator fits the data."""
    from common.metrics import evaluate, fid
    if fid.supports(dataset, spec.preset):  # RGB: FID of the final samples only (no probes:
        n = fid.sample_count(n_images)      # an Inception pass costs seconds per image on a CPU)
        if decoded and n >= 2 and fid.unavailable_reason() is None:
            return {"kind": "fid", "samples": n, "every": 0, "reference": decoded}
        return None
    if not evaluate.supports(dataset, spec.preset):
        return None
    if every is None:  # ~10 points; a multiple of 10 so GPU backends that fetch losses every
        every = max(10, round(iters / 10, -1))  # 10 steps probe at a step boundary they reached
    return {"samples": evaluate.SAMPLE_COUNT, "every": every}


def quality_unavailable(dataset: str, spec) -> str | None:
    """For an RGB run without FID, why (results.json and the report say it); else None."""
    from common.metrics import fid
    if not fid.supports(dataset, spec.preset):
        return None
    return fid.unavailable_reason() or "FID unavailable: fewer than 4 training images (FID needs 2N real ones)"


class QualityJudge:
    """Scores each finished backend's fixed-z samples, and once the real-vs-real floor."""

    def __init__(self, results: dict, spec):
        self.results, self.spec = results, spec
        self.evaluator = None

    def assess(self, result: dict, backend_dir: Path, seed: int) -> None:
        samples_file = backend_dir / "quality_samples.npy"
        if not samples_file.exists():
            return
        try:
            if self.evaluator is None:
                if self.results["config"]["quality"].get("kind") == "fid":
                    from common.metrics.fid import FIDEvaluator, describe
                    self.evaluator = FIDEvaluator(self.results["config"]["quality"])
                else:
                    from common.metrics.evaluate import Evaluator, describe
                    self.evaluator = Evaluator()
                self.results["quality_info"] = describe(self.evaluator)
                self.results["quality_floor"] = self.evaluator.real_floor(self.results["config"]["seed"])
            result["quality"] = self.evaluator.evaluate(np.load(samples_file, allow_pickle=False), seed)
        except Exception as exc:  # noqa: BLE001 - quality is reported missing, training is kept
            result["quality_error"] = f"{type(exc).__name__}: {exc}"
