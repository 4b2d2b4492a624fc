"""The end-to-end parity rule's arithmetic (tests/support/tolerances.py drift_bound)."""
import numpy as np

from tests.support.tolerances import FIRST5_ATOL, NOISE_FACTOR, drift_bound
from tests.support.seed_list import seed_list


def test_bound_is_twice_the_largest_drift_so_far_and_never_below_the_floor():
    exact = np.zeros((4, 2))
    runs = np.array([[[0, 1e-4], [2e-3, 0], [0, 1e-4], [0, 3e-3]],
                     [[0, 0], [0, -1e-3], [5e-3, 0], [0, 0]]])
    bound = drift_bound(exact, runs)
    # iteration 0: drift 1e-4 -> floor; 1: 2e-3 (either loss, either sign); 2: 5e-3; 3: still 5e-3
    np.testing.assert_allclose(bound, [FIRST5_ATOL, NOISE_FACTOR * 2e-3, NOISE_FACTOR * 5e-3,
                                       NOISE_FACTOR * 5e-3])


def test_the_parity_seed_sweep_reads_ranges_and_lists():
    assert seed_list("0-3,7") == [0, 1, 2, 3, 7]
    assert seed_list("5") == [5]
