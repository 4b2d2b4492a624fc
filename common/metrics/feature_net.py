"""The feature network: a LeNet-like MNIST classifier whose forward pass is numpy only.

Trained once by tools/train_feature_net.py (fixed seed) and committed as mnist_lenet.npz. The file
is checked against its sha256 before it is opened, so a modified or corrupt copy is refused
instead of silently changing every quality number. Input: (N, 1, 32, 32) in [-1, 1] (the mnist32
images: 28x28 digits padded with background -1); features: the 64 ReLU units before the logits.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.data.download import file_digest

WEIGHTS_PATH = Path(__file__).with_name("mnist_lenet.npz")
# Printed by tools/train_feature_net.py; a retrained network changes every quality number, so
# updating this is a deliberate, reviewed step.
WEIGHTS_SHA256 = "c43f8b5622aee73e79a94cd3e9c345d74ff4133a8307405fea414b7e03a9c18a"

# (name, kind, shape) in forward order; the training script builds the same layers from this.
LAYERS = (
    ("conv1", "conv", (16, 1, 5, 5)),    # 32 -> 28, ReLU, max-pool 2 -> 14
    ("conv2", "conv", (32, 16, 5, 5)),   # 14 -> 10, ReLU, max-pool 2 -> 5
    ("fc1", "linear", (64, 32 * 5 * 5)),  # ReLU: the feature layer
    ("fc2", "linear", (10, 64)),          # logits
)
FEATURE_DIM = 64
INPUT_SHAPE = (1, 32, 32)


class FeatureNetError(ValueError):
    """The feature network's weight file is missing, modified or malformed."""




@dataclass(frozen=True)
class FeatureNet:
    params: dict[str, np.ndarray]

    @classmethod
    def load(cls, path: Path = WEIGHTS_PATH, sha256: str = WEIGHTS_SHA256) -> "FeatureNet":
        path = Path(path)
        if not path.is_file():
            raise FeatureNetError(f"{path}: missing; restore it from git or retrain with "
                                  "python tools/train_feature_net.py")
        got = file_digest(path, "sha256")
        if got != sha256:  # checked before the file is parsed
            raise FeatureNetError(f"{path}: sha256 {got} is not the committed {sha256}; restore it "
                                  "with git checkout (retraining changes every quality number)")
        with np.load(path, allow_pickle=False) as npz:
            params = {k: npz[k].astype(np.float64) for k in npz.files}
        for name, _, shape in LAYERS:
            if params.get(f"{name}.weight", np.empty(0)).shape != shape or \
                    params.get(f"{name}.bias", np.empty(0)).shape != shape[:1]:
                raise FeatureNetError(f"{path}: {name} weights do not have shape {shape}")
        return cls(params)

    def forward(self, images: np.ndarray, batch: int = 500) -> tuple[np.ndarray, np.ndarray]:
        """(features (N, 64), class probabilities (N, 10)) for images in [-1, 1]."""
        images = np.asarray(images, np.float64)
        if images.shape[1:] != INPUT_SHAPE:
            raise ValueError(f"the feature network takes (N, {', '.join(map(str, INPUT_SHAPE))}) "
                             f"images, got {images.shape}")
        feats, logits = zip(*(self._forward(images[i:i + batch])
                              for i in range(0, len(images), batch))) if len(images) else ((), ())
        feats = np.concatenate(feats) if feats else np.zeros((0, FEATURE_DIM))
        logits = np.concatenate(logits) if logits else np.zeros((0, 10))
        logits = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return feats, probs / probs.sum(axis=1, keepdims=True)

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = self.params
        x = _max_pool2(_relu(_conv(x, p["conv1.weight"], p["conv1.bias"])))
        x = _max_pool2(_relu(_conv(x, p["conv2.weight"], p["conv2.bias"])))
        features = _relu(x.reshape(len(x), -1) @ p["fc1.weight"].T + p["fc1.bias"])
        return features, features @ p["fc2.weight"].T + p["fc2.bias"]


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0)


def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Valid cross-correlation, stride 1 (torch.nn.Conv2d's convention), NCHW."""
    o, c, kh, kw = w.shape
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))  # N,C,H',W',kh,kw
    n, _, h, wd = windows.shape[:4]
    cols = windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * h * wd, c * kh * kw)
    out = cols @ w.reshape(o, -1).T + b
    return out.reshape(n, h, wd, o).transpose(0, 3, 1, 2)


def _max_pool2(x: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))
