"""The torch half of the FID evaluator (common/metrics/fid.py imports it only when the `fid` extra
is installed): the 2015-12-05 Inception pool3 network as TorchScript, fed the way the reference
TensorFlow FID code (TTUR) feeds its graph, so numbers follow the published statistics' convention:

- uint8 pixels as float 0..255, resized to 299x299 by TF1's legacy bilinear resize
  (align_corners=False, no half-pixel centres: source = destination * in/out), the resize inside
  the original graph; NVIDIA's TorchScript port reproduces it with this affine grid;
- scaled as the graph does, (x - 128) / 128, i.e. [-1, 0.9921875];
- 2048 features from the global average pool ("pool_3").

torch is imported inside the functions: every module of common/ must import without a framework
(tests/unit/test_registry.py imports them all with the frameworks blocked).
"""
from __future__ import annotations

import numpy as np

SIZE = 299


def load(path: str):
    import torch
    return torch.jit.load(path, map_location="cpu").eval()


def tf1_bilinear(x, size: int = SIZE):
    """NCHW float tensor -> size x size, TF1 resize_bilinear(align_corners=False) semantics."""
    import torch
    n, c, h, w = x.shape
    theta = torch.eye(2, 3, dtype=torch.float32)
    # grid_sample(align_corners=False) samples at half-pixel centres; shifting by half a source
    # pixel minus half a destination pixel moves them to TF1's source = destination * in/out.
    theta[0, 2] += 1.0 / w - 1.0 / size
    theta[1, 2] += 1.0 / h - 1.0 / size
    grid = torch.nn.functional.affine_grid(theta.unsqueeze(0).expand(n, 2, 3), [n, c, size, size],
                                           align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border",
                                           align_corners=False)


def features(model, images_uint8: np.ndarray, batch_size: int = 50) -> np.ndarray:
    """uint8 (N, 3, H, W) -> float64 (N, 2048) pool3 features."""
    import torch
    out = []
    with torch.inference_mode():
        for i in range(0, len(images_uint8), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images_uint8[i:i + batch_size])).float()
            x = (tf1_bilinear(x) - 128.0) / 128.0
            out.append(model(x).reshape(len(x), -1).double().numpy())
    return np.concatenate(out)
