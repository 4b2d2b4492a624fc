"""The FID evaluator for RGB runs (common/metrics/fid.py, inception_torch.py): why it is missing,
the reference convention of its input (TF1 bilinear to 299, (x-128)/128), and the metric itself."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from common.data import images
from common.metrics import fid, inception_torch
from tests.support.backends import IN_CI


def require_fid():
    reason = fid.unavailable_reason()
    if reason:
        if IN_CI:  # CI installs the fid extra through dev
            pytest.fail(f"CI=true: {reason}", pytrace=False)
        pytest.skip(reason)


# ---- why FID is missing --------------------------------------------------------------------------

def test_no_torch_says_so_with_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    reason = fid.unavailable_reason()
    assert reason.startswith("FID unavailable: torch is not installed") and '".[fid]"' in reason


def test_no_weights_package_says_so(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == fid.WEIGHTS_PACKAGE else real(name, *a))
    if real("torch") is None:
        pytest.skip("torch not installed: the torch message comes first")
    assert fid.unavailable_reason().startswith("FID unavailable: no offline Inception weights")


def test_weights_with_another_hash_are_refused(monkeypatch, tmp_path):
    fake = tmp_path / fid.WEIGHTS_FILE
    fake.write_bytes(b"not the Inception weights")
    monkeypatch.setattr(fid, "weights_path", lambda: fake)
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch not installed: the torch message comes first")
    assert "not the pinned FID Inception weights" in fid.unavailable_reason()


def test_sample_count_leaves_room_for_two_real_halves():
    assert fid.sample_count(50_000) == fid.SAMPLE_COUNT
    assert fid.sample_count(21) == 10 and fid.sample_count(1) == 0


def test_fast_frechet_equals_the_full_eigen_route():
    from common.metrics import stats
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((80, 30)) @ rng.standard_normal((30, 30))
    mu_a, cov_a = stats.mean_cov(ref)
    for n in (8, 50):  # fewer samples than dimensions (rank-deficient) and more
        feats = rng.standard_normal((n, 30)) * 2 + 0.5
        full = stats.frechet_distance(*stats.mean_cov(feats), mu_a, cov_a)
        fast = fid.frechet_to_reference(feats, mu_a, cov_a, stats.sqrtm_psd(cov_a))
        # The full route takes square roots of the rounding noise (~eps * largest eigenvalue,
        # ~1e3 here) of the d - n + 1 zero eigenvalues: each adds up to sqrt(2.2e-16 * 1e3)
        # ~ 5e-7, so up to 30 * 5e-7 * 2 ~ 3e-5 in all (measured 4.5e-6); the n x n route has none.
        assert fast == pytest.approx(full, rel=0, abs=1e-4)


# ---- the reference convention of the input -----------------------------------------------------

def tf1_bilinear_numpy(x: np.ndarray, size: int) -> np.ndarray:
    """TF1 tf.image.resize_bilinear(align_corners=False, half_pixel_centers=False), the resize in
    the TensorFlow FID graph: source coordinate = destination * in / out, edge-clamped."""
    def axis(n_in):
        src = np.arange(size) * (n_in / size)
        lo = np.floor(src).astype(int)
        return lo, np.minimum(lo + 1, n_in - 1), src - lo
    (y0, y1, fy), (x0, x1, fx) = axis(x.shape[2]), axis(x.shape[3])
    top = x[:, :, y0][:, :, :, x0] * (1 - fx) + x[:, :, y0][:, :, :, x1] * fx
    bottom = x[:, :, y1][:, :, :, x0] * (1 - fx) + x[:, :, y1][:, :, :, x1] * fx
    return top * (1 - fy[:, None]) + bottom * fy[:, None]


def test_resize_is_tf1_legacy_bilinear():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).integers(0, 256, (2, 3, 64, 64)).astype(np.float64)
    ours = inception_torch.tf1_bilinear(torch.from_numpy(x).float()).double().numpy()
    ref = tf1_bilinear_numpy(x, 299)
    # float32 grid coordinates (~1e-7 relative of 64) times a pixel step of <= 255: ~2e-3;
    # measured 1.5e-3 against TensorFlow's own tf.compat.v1.image.resize_bilinear.
    assert np.abs(ours - ref).max() < 5e-3
    # The half-pixel (TF2 / PyTorch default) resize is a different image: the test can tell.
    half = torch.nn.functional.interpolate(torch.from_numpy(x).float(), size=(299, 299), mode="bilinear",
                                           align_corners=False).double().numpy()
    assert np.abs(half - ref).max() > 10


def test_resize_matches_tensorflows_own_legacy_bilinear():
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("tensorflow")
    x = np.random.default_rng(2).integers(0, 256, (2, 3, 64, 64)).astype(np.float32)
    ours = inception_torch.tf1_bilinear(torch.from_numpy(x)).numpy()
    ref = tf.compat.v1.image.resize_bilinear(x.transpose(0, 2, 3, 1), (299, 299), align_corners=False,
                                             half_pixel_centers=False).numpy().transpose(0, 3, 1, 2)
    assert np.abs(ours - ref).max() < 5e-3  # float32 grid coordinates, as above (measured 1.6e-3)


def test_network_input_is_scaled_as_the_tensorflow_graph():
    torch = pytest.importorskip("torch")
    seen = []

    def fake_model(x):
        seen.append(x)
        return torch.zeros(len(x), 2048, 1, 1)
    black_white = np.stack([np.zeros((3, 64, 64), np.uint8), np.full((3, 64, 64), 255, np.uint8)])
    feats = inception_torch.features(fake_model, black_white)
    assert feats.shape == (2, 2048) and feats.dtype == np.float64
    x = seen[0]
    assert x.shape == (2, 3, 299, 299)
    # (0 - 128) / 128 and (255 - 128) / 128, up to the float32 interpolation weights (~1e-7)
    np.testing.assert_allclose(x[0].numpy(), -1.0, atol=1e-5)
    np.testing.assert_allclose(x[1].numpy(), 127 / 128, atol=1e-5)


# ---- the metric, with the real network --------------------------------------------------------

N = 5  # samples per set: enough to order real below noise, cheap on a 2-core CPU


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """10 smooth random 'photos' as a decoded file, as run_all.py hands it to the evaluator."""
    require_fid()
    rng = np.random.default_rng(3)
    small = rng.integers(0, 256, (10, 3, 4, 4), dtype=np.uint8)
    photos = images.resize_array(small, 64)  # blurry colour fields, unlike noise
    _, _, decoded = images.decode_cached(tmp_path_factory.mktemp("decoded") / "ref.npy",
                                         lambda: (photos, {}))
    return decoded


@pytest.mark.slow
def test_fid_orders_real_below_noise_and_caches_the_reference(reference, monkeypatch):
    quality = {"kind": "fid", "samples": N, "every": 0, "reference": reference}
    evaluator = fid.FIDEvaluator(quality)
    floor = evaluator.real_floor()
    noise = np.random.default_rng(9).integers(0, 256, (N, 3, 64, 64), dtype=np.uint8)
    scored = evaluator.evaluate(noise)
    assert floor["n"] == scored["n"] == N
    assert 0 <= floor["fid"] < scored["fid"] and scored["fid_std"] >= 0
    cached = list(Path(reference["path"]).parent.glob("fid-ref-*.npz"))
    assert len(cached) == 1
    # A second evaluator takes half A's statistics from the cache: one Inception pass (half B's
    # images are only passed when scored), and the same number.
    calls = []
    real_features = inception_torch.features
    monkeypatch.setattr(inception_torch, "features", lambda m, x, *a: calls.append(len(x)) or real_features(m, x, *a))
    again = fid.FIDEvaluator(quality)
    assert calls == []
    assert again.evaluate(noise)["fid"] == pytest.approx(scored["fid"], rel=1e-9)


@pytest.mark.slow
def test_fid_of_the_reference_itself_is_zero(reference):
    evaluator = fid.FIDEvaluator({"kind": "fid", "samples": N, "every": 0, "reference": reference})
    real, _ = images.load_decoded(reference)
    order = np.random.default_rng(fid.SPLIT_SEED).permutation(len(real))[:2 * N]
    feats = evaluator.features(real[np.sort(order[:N])])  # half A, the reference itself
    assert feats.shape == (N, 2048) and feats.min() >= 0  # pool3 follows a ReLU
    # Same features, same statistics: FID is 0 up to float64 eigen-decomposition rounding.
    value = fid.frechet_to_reference(feats, evaluator.mu_a, evaluator.cov_a, evaluator.sqrt_a)
    assert value < 1e-6 * np.trace(evaluator.cov_a)
