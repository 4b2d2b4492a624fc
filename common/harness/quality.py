"""Sample quality, judged in the parent (numpy only, in this process: the children's timings are
not disturbed): what the children compute for the evaluator, and the scoring of their samples."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def quality_config(dataset: str, spec, iters: int, every: int | None, n_images: int = 0,
                   decoded: dict | None = None, target_fd: float | None = None) -> dict | None:
    """What the children compute for the evaluator; None where no evaluator fits the data.
    target_fd (--target-fd): recorded only when given, so a plain run's config is unchanged."""
    from common.metrics import evaluate, fid
    if fid.supports(dataset, spec.preset):  # RGB: FID of the final samples only (no probes:
        n = fid.sample_count(n_images)      # an Inception pass costs seconds per image on a CPU)
        if decoded and n >= 2 and fid.unavailable_reason() is None:
            return {"kind": "fid", "samples": n, "every": 0, "reference": decoded}
        return None
    if not evaluate.supports(dataset, spec.preset):
        return None
    if every is None:  # ~10 points; a multiple of 10 so GPU backends that fetch losses every
        every = max(10, int(round(iters / 10, -1)))  # 10 steps probe at a step boundary they reached
    return {"samples": evaluate.SAMPLE_COUNT, "every": every,
            **({"target_fd": target_fd} if target_fd is not None else {})}


def target_problem(target_fd: float | None, every: int | None, dataset: str, spec,
                   replicas: int = 1) -> str | None:
    """One line if --target-fd cannot be honoured (before any data is loaded), else None. Its
    bound (positive) is checked with every option's own."""
    from common.metrics import evaluate
    if target_fd is None:
        return None
    if not math.isfinite(target_fd):
        return f"--target-fd must be a finite FD, got {target_fd}"
    if every == 0:
        return ("--target-fd needs the FD checks that --quality-every 0 turns off; give "
                "--quality-every K (or leave it out for the default)")
    if not evaluate.supports(dataset, spec.preset):
        return (f"--target-fd: {dataset} with preset {spec.preset.name} has no FD evaluator "
                "during training (only digits, --dataset mnist or mnist-5k with preset mnist32, "
                "have one; RGB data get FID of the final samples only); drop --target-fd")
    if replicas > 1:
        return ("--target-fd with --devices/--nodes > 1 is not supported in this version (only "
                "the first replica evaluates, so the others could not stop with it); drop one of them")
    return None


def time_to_target(curve: list[dict], target_fd: float) -> dict:
    """results.json's "time_to_target" of one backend: the first FD check after training began
    whose FD is at or under target_fd, with its iterations and training seconds (the curve's:
    step time only, so the checks' own evaluation is not in it); reached False (nulls) if none."""
    hit = next((p for p in curve if p["iteration"] > 0 and p["fd"] <= target_fd), None)
    return {"target_fd": target_fd, "reached": hit is not None,
            "iterations": hit["iteration"] if hit else None,
            "seconds": hit["train_seconds"] if hit else None}


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
