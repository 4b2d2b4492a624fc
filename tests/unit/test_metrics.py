"""The quality evaluator: statistics against their definitions, the feature network against its
hash and its accuracy, and the metrics against images of known quality."""
from __future__ import annotations

import numpy as np
import pytest

from common import data
from common.metrics import evaluate, feature_net, stats


@pytest.fixture(scope="module")
def evaluator():
    return evaluate.Evaluator()


def _gaussian(n, d, seed, shift=0.0):
    return np.random.default_rng(seed).standard_normal((n, d)) + shift


def test_identical_sets_give_zero_fd_and_kid_near_zero():
    x = _gaussian(500, 16, 0)
    assert stats.fd_features(x, x) == pytest.approx(0.0, abs=1e-9)
    # Unbiased MMD^2 of a set with itself: both self-terms equal, the cross term includes the
    # diagonal, so it is slightly negative: O(1/n) of the kernel's scale.
    mean, _ = stats.kid(x, x, np.random.default_rng(0), subsets=5, subset_size=500)
    assert abs(mean) < 0.05


def test_equal_covariances_give_squared_mean_difference():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((8, 8))
    cov = a @ a.T + np.eye(8)
    mu1, mu2 = rng.standard_normal(8), rng.standard_normal(8)
    assert stats.frechet_distance(mu1, cov, mu2, cov) == pytest.approx(np.sum((mu1 - mu2) ** 2), rel=1e-9)


def test_matrix_square_root_agrees_with_scipy():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(2)
    a = rng.standard_normal((20, 12))
    psd = a.T @ a  # rank 12 of 12: full; and a rank-deficient one
    b = rng.standard_normal((5, 12))
    for m in (psd, b.T @ b):
        ours = stats.sqrtm_psd(m)
        np.testing.assert_allclose(ours @ ours, m, atol=1e-9 * np.abs(m).max())
        ref = np.real(scipy_linalg.sqrtm(m))
        np.testing.assert_allclose(ours, ref, atol=1e-6 * np.abs(ref).max())


def test_fd_matches_the_general_formula_with_scipy():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    x, y = _gaussian(400, 6, 3), _gaussian(400, 6, 4, shift=0.5) * 1.5
    (m1, c1), (m2, c2) = stats.mean_cov(x), stats.mean_cov(y)
    ref = np.sum((m1 - m2) ** 2) + np.trace(c1 + c2 - 2 * np.real(scipy_linalg.sqrtm(c1 @ c2)))
    assert stats.fd_features(x, y) == pytest.approx(ref, rel=1e-8)


def test_classifier_score_bounds():
    one_hot = np.eye(10)[np.arange(1000) % 10]
    assert stats.classifier_score(one_hot)[0] == pytest.approx(10.0, rel=1e-6)
    assert stats.classifier_score(np.tile(np.eye(10)[3], (1000, 1)))[0] == pytest.approx(1.0, rel=1e-6)
    assert stats.classifier_score(np.full((1000, 10), 0.1))[0] == pytest.approx(1.0, rel=1e-6)


def test_precision_recall_density_coverage_of_a_set_with_itself():
    x = _gaussian(300, 8, 5)
    # every kept point lies in its own ball; only the dropped widest balls' centres may lie in none
    assert all(1 - stats.OUTLIER_FRACTION <= v < 1.0 for v in stats.precision_recall(x, x))
    density, coverage = stats.density_coverage(x, x)
    assert coverage == 1.0 and density == pytest.approx(1.0, abs=0.2)
    far = x + 100.0
    assert stats.precision_recall(x, far) == (0.0, 0.0)
    assert stats.density_coverage(x, far) == (0.0, 0.0)


def test_class_coverage_counts_modes_and_kl():
    uniform = np.eye(10)[np.arange(1000) % 10]
    cov = stats.class_coverage(uniform)
    assert cov["histogram"] == [100] * 10 and cov["modes_covered"] == 10
    assert cov["kl_to_uniform"] == pytest.approx(0.0, abs=1e-12)
    collapsed = stats.class_coverage(np.eye(10)[np.zeros(1000, int)])
    assert collapsed["modes_covered"] == 1
    assert collapsed["kl_to_uniform"] == pytest.approx(np.log(10))


# ----- the feature network -----
def test_weights_hash_check_rejects_a_modified_file(tmp_path):
    blob = bytearray(feature_net.WEIGHTS_PATH.read_bytes())
    blob[len(blob) // 2] ^= 1
    bad = tmp_path / "mnist_lenet.npz"
    bad.write_bytes(bytes(blob))
    with pytest.raises(feature_net.FeatureNetError, match="sha256"):
        feature_net.FeatureNet.load(bad)
    with pytest.raises(feature_net.FeatureNetError, match="missing"):
        feature_net.FeatureNet.load(tmp_path / "nothing.npz")


def test_committed_weights_load_and_classify_held_out_digits(evaluator):
    """The spec for the evaluator: at least 95% on digits the classifier never trained on."""
    assert evaluator.accuracy() >= 0.95


def test_numpy_forward_equals_torch_forward():
    """The numpy forward is the training script's network: same logits as torch's layers."""
    torch = pytest.importorskip("torch")
    from tools import train_feature_net
    net = feature_net.FeatureNet.load()
    model = train_feature_net.build(torch).double()
    layers = [m for m in model if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        for (name, _, _), m in zip(feature_net.LAYERS, layers):
            m.weight.copy_(torch.from_numpy(net.params[f"{name}.weight"]))
            m.bias.copy_(torch.from_numpy(net.params[f"{name}.bias"]))
        x = np.tanh(np.random.default_rng(0).standard_normal((7, 1, 32, 32)))
        ref = torch.softmax(model(torch.from_numpy(x)), 1).numpy()
    np.testing.assert_allclose(net.forward(x)[1], ref, atol=1e-10)


def test_reference_set_is_disjoint_from_the_classifier_training_digits():
    train, held_out = evaluate.split_indices(5000)
    assert len(np.intersect1d(train, held_out)) == 0
    assert len(train) + len(held_out) == 5000


# ----- metrics on images of known quality -----
def _noisy(images_uint8, sigma, seed=0):
    x = evaluate.to_float(images_uint8)
    x = x + sigma * np.random.default_rng(seed).standard_normal(x.shape)
    return data.quantize_to_uint8(np.clip(x, -1, 1))


@pytest.mark.slow
def test_fd_and_kid_grow_monotonically_with_noise(evaluator):
    fds, kids = [], []
    for sigma in (0.0, 0.2, 0.5, 1.0):
        q = evaluator.evaluate(_noisy(evaluator.real_b, sigma))
        fds.append(q["fd"])
        kids.append(q["kid"])
    assert fds == sorted(fds) and fds[-1] > 10 * fds[0], fds
    assert kids == sorted(kids), kids


@pytest.mark.slow
def test_dropping_a_class_lowers_coverage_and_raises_fd(evaluator):
    full = evaluator.evaluate(evaluator.real_b)
    _, probs = evaluator.net.forward(evaluate.to_float(evaluator.real_b))
    keep = np.argmax(probs, 1) != 3
    # Same N as every evaluation (FD is biased by N): refill with other digits, without the 3s.
    idx = np.flatnonzero(keep)
    idx = np.resize(idx, len(evaluator.real_b))
    dropped = evaluator.evaluate(evaluator.real_b[idx])
    assert dropped["modes_covered"] == 9 and full["modes_covered"] == 10
    assert dropped["coverage"] < full["coverage"]
    assert dropped["fd"] > full["fd"] + 3 * (full["fd_std"] + dropped["fd_std"])


@pytest.mark.slow
def test_real_floor_is_far_below_noise(evaluator):
    floor = evaluator.real_floor()
    noise = evaluator.evaluate(np.random.default_rng(0).integers(0, 256, evaluator.real_b.shape, dtype=np.uint8))
    assert floor["n"] == noise["n"] == evaluate.SAMPLE_COUNT
    assert noise["fd"] > 50 * floor["fd"]
    assert floor["modes_covered"] == 10 and floor["recall"] > 0.8


@pytest.mark.slow
def test_evaluation_is_repeatable_and_refuses_float_images(evaluator):
    assert evaluator.evaluate(evaluator.real_b, seed=3) == evaluator.evaluate(evaluator.real_b, seed=3)
    with pytest.raises(TypeError, match="uint8"):
        evaluator.evaluate(evaluate.to_float(evaluator.real_b))


@pytest.mark.slow
def test_a_trained_generator_beats_an_untrained_one_by_a_wide_margin(evaluator):
    """The evaluator tells training apart: PyTorch's G before and after 150 iterations of batch 64
    on the real digits. Measured: FD 2821 -> 1230 (bootstrap std ~10-20), classifier score
    1.00 -> 2.22; asserted: FD down by 40%, the two FDs 10 stds apart, score up by 0.5."""
    from tests.support.backends import require_backend
    require_backend("pytorch")
    from backends import load
    from backends.base import BackendOptions
    from common.data import noise
    from common import canonical
    from common.spec import model_spec
    spec = model_spec("mnist32")
    backend = load("pytorch")(spec, BackendOptions(device="cpu"))
    backend.load_weights(canonical.draw_initial_weights(spec, 0))
    z = noise.fixed_noise(0, evaluate.SAMPLE_COUNT, spec.preset.nz)
    before = evaluator.evaluate(data.quantize_to_uint8(backend.generate(z)))
    images, _ = evaluate.mnist_5k_digits()
    plan = noise.BatchPlan(len(images), 64, seed=0)
    backend.train(noise.iterate_batches(images, plan, spec.preset.nz, 0, 150), 0, lambda *a: None)
    after = evaluator.evaluate(data.quantize_to_uint8(backend.generate(z)))
    print(f"FD {before['fd']:.0f} -> {after['fd']:.0f}, score {before['classifier_score']:.2f} -> "
          f"{after['classifier_score']:.2f}")
    assert after["fd"] < 0.6 * before["fd"]
    assert after["fd"] + 10 * after["fd_std"] < before["fd"] - 10 * before["fd_std"]
    assert after["classifier_score"] > before["classifier_score"] + 0.5


def _fidelity(evaluator, images_uint8) -> dict:
    """Precision/recall and density/coverage of a set of images against the reference half A."""
    feats, _ = evaluator.net.forward(evaluate.to_float(images_uint8))
    p, r = stats.precision_recall(evaluator.feat_a, feats)
    d, c = stats.density_coverage(evaluator.feat_a, feats)
    return {"precision": p, "recall": r, "density": d, "coverage": c}


def test_noise_scores_low_and_only_a_collapse_onto_one_digit_is_flagged(evaluator):
    """docs/quality.md#noise: grey noise once scored precision 0.96 through one isolated real
    digit's wide ball. Real digits score high (floor 0.84/0.87), noise low and unflagged, one
    repeated digit precise, unvaried and flagged."""
    from common.results.tables import collapse_flag
    rng = np.random.default_rng(0)
    floor = _fidelity(evaluator, evaluator.real_b)
    assert floor["precision"] >= 0.8 and floor["recall"] >= 0.8  # measured 0.838, 0.873
    assert collapse_flag(floor, floor) == ""
    grey = data.quantize_to_uint8(np.tanh(rng.normal(0, 0.5, evaluator.real_a.shape)))
    uniform = rng.integers(0, 256, evaluator.real_a.shape).astype(np.uint8)
    for name, images in (("grey", grey), ("uniform", uniform)):
        q = _fidelity(evaluator, images)
        assert q["recall"] < 0.05 and q["coverage"] < 0.05, name
        assert q["density"] < 0.8 * floor["density"], name  # measured 0.30, 0.53 (floor 0.95)
        assert collapse_flag(q, floor) == "", name
    # grey noise: 1.000 before the widest balls were dropped, 0.225 after. Uniform iid noise
    # still sits inside ordinary balls of real 8s (0.82): the density gate keeps it unflagged.
    assert _fidelity(evaluator, grey)["precision"] < 0.5 * floor["precision"]
    one = _fidelity(evaluator, np.repeat(evaluator.real_b[:1], len(evaluator.real_b), axis=0))
    assert one["precision"] == 1.0 and one["recall"] < 0.05
    assert collapse_flag(one, floor).startswith("mode collapse?")


def test_one_outlier_ball_does_not_make_a_far_cluster_precise():
    """The cause of noise's old precision, in miniature: a tight cluster far from the reals, and one
    isolated real whose 3-NN ball reaches it. Kynkaanniemi's rule scored the cluster 1.0."""
    rng = np.random.default_rng(6)
    real = rng.standard_normal((400, 8))
    real[0] = 12.0                      # an isolated real: its 3-NN radius is ~12 wide
    fake = 9.0 + 0.1 * rng.standard_normal((400, 8))  # inside that ball only
    radius = np.sqrt(np.sort(((real[1:] - real[0]) ** 2).sum(1))[2])
    assert np.linalg.norm(fake - real[0], axis=1).max() < radius  # the old rule: precision 1.0
    assert stats.precision_recall(real, fake)[0] == 0.0
