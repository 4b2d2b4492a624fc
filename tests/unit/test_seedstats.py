"""The statistics that judge quality across seeds (common/results/seedstats.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from common.results import seedstats


def test_summarize_gives_mean_sample_std_and_a_t_interval():
    s = seedstats.summarize([1.0, 2.0, 3.0, 4.0])
    assert s["n"] == 4 and s["mean"] == 2.5
    assert s["std"] == pytest.approx(math.sqrt(5 / 3))
    half = 3.182446305284263 * math.sqrt(5 / 3) / 2  # t(0.975, 3) · std / √n, from tables
    assert s["ci95"] == pytest.approx([2.5 - half, 2.5 + half])
    one = seedstats.summarize([7.0, None])
    assert one["n"] == 1 and one["std"] is None and one["ci95"] is None


def test_holm_adjusts_in_step_down_order():
    # sorted 0.01, 0.03, 0.04 -> 3·0.01, max(0.03, 2·0.03), max(0.06, 1·0.04): in the order given
    assert seedstats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert seedstats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1


def test_a_pair_of_three_seeds_can_never_reach_five_percent():
    assert seedstats.smallest_pairwise_p(3, 3) == pytest.approx(0.1)  # 2 / C(6, 3)
    assert seedstats.smallest_pairwise_p(8, 8) == pytest.approx(2 / 12870)


def test_backends_drawn_from_one_distribution_are_called_different_at_most_five_percent_of_the_time():
    # 200 studies of 5 backends x 8 seeds from one normal: the family-wise error rate must be
    # about alpha; its binomial std at n=200 is 1.5%, so 3 sigma above 5% is 9.6%.
    rng = np.random.default_rng(0)
    called = [bool(seedstats.between_backends({n: list(400 + 60 * rng.standard_normal(8)) for n in "abcde"})["different"])
              for _ in range(200)]
    assert np.mean(called) < 0.096
    same = [380.0, 420.0, 350.0, 460.0, 400.0, 390.0, 410.0, 300.0]
    r = seedstats.between_backends({n: list(np.roll(same, i)) for i, n in enumerate("abcde")})
    assert r["p"] == pytest.approx(1.0) and r["different"] == []
    assert r["verdict"].startswith("no difference found: at 8 seeds per backend")
    assert "would have been found" in r["verdict"]  # it says what size it could detect


def test_a_real_difference_is_found_and_the_pair_named():
    rng = np.random.default_rng(1)
    groups = {"a": list(400 + 20 * rng.standard_normal(8)), "b": list(400 + 20 * rng.standard_normal(8)),
              "c": list(700 + 20 * rng.standard_normal(8))}
    r = seedstats.between_backends(groups)
    assert r["p"] < 0.01
    assert sorted(r["different"]) == ["a vs c", "b vs c"]
    assert r["verdict"].startswith("yes:")


def test_too_few_seeds_are_said_as_such():
    r = seedstats.between_backends({"a": [1, 2, 3], "b": [10, 11, 12], "c": [20, 21, 22]})
    assert "too few for any pair" in r["verdict"]  # 3 pairs · 0.1 > 0.05 whatever the data
    r = seedstats.between_backends({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    assert r["p"] is None and r["verdict"].startswith("not tested")
    r = seedstats.between_backends({"a": [1.0, 2.0, 3.0], "b": [3.0, 4.0, 5.0], "c": [1.0]})
    assert r["left_out"] == ["c"] and "left out" in r["verdict"]


def test_equal_values_give_no_difference_instead_of_an_error():
    r = seedstats.between_backends({"a": [5.0] * 4, "b": [5.0] * 4})
    assert r["p"] == 1.0 and r["different"] == []


def test_the_noise_threshold_leaves_five_percent_of_same_backend_pairs_beyond_it():
    # Two seeds of one backend: draws of N(0, std). With std known, |a - b| > 1.96·√2·std for 5%
    # of pairs; 40,000 pairs give a binomial std of 0.11%, so 4.5%-5.5% is a 4.5-sigma band.
    rng = np.random.default_rng(2)
    a, b = rng.normal(0, 60, (2, 40_000))
    rate = np.mean([seedstats.beyond_seed_noise(x, y, 60.0) for x, y in zip(a, b)])
    assert 0.045 < rate < 0.055
    # an estimated std widens it by Student's t: 15 degrees of freedom, t = 2.131
    assert seedstats.noise_threshold(60.0, 15) == pytest.approx(2.1314495 * math.sqrt(2) * 60.0)
