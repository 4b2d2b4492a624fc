"""Each backend's own Adam, given identical gradients, against the numpy model of the convention
it declares (BackendBase.adam_convention; tests/support/oracle.py adam_update)."""
from __future__ import annotations

import numpy as np

from common.spec import model_spec
from tests.support import oracle
from tests.support.tolerances import OPTIMIZER, assert_within


def test_optimizer_matches_numpy_model_of_its_convention(make_backend):
    """Three steps of apply_gradients. Gradients span 1e-9..1e-3 so eps matters: a wrong eps
    placement changes near-zero-gradient updates by O(lr), far above the bound. Both compute the
    same quantities; what remains is float32 rounding of each update (~lr·u per step) and of p
    itself: 1e-6 of max(|p|, lr) is ample and still catches it."""
    spec = model_spec("mnist32")
    b = make_backend()
    rng = np.random.default_rng(0)
    for net in ("D", "G"):
        keys = oracle.trainable_keys(spec, net)
        ref = {k: v.astype(np.float64) for k, v in b.export_weights().items() if k in keys}
        m, v = dict.fromkeys(keys), dict.fromkeys(keys)
        for t in (1, 2, 3):
            grads = {k: (rng.standard_normal(ref[k].shape) * 10.0 ** rng.integers(-9, -2))
                     .astype(np.float32) for k in keys}
            b.apply_gradients(net, grads)
            for k in keys:
                ref[k], m[k], v[k] = oracle.adam_update(ref[k], grads[k], m[k], v[k], t,
                                                        spec.adam, b.adam_convention)
            got = b.export_weights()
            for k in keys:
                assert_within(OPTIMIZER, f"{k} step {t}", got[k], ref[k], 1e-6,
                              max(np.abs(ref[k]).max(), spec.adam.lr))
