"""Canonical weights carry a trained model across frameworks: PyTorch trains a few iterations,
exports, and every other backend that loads the file generates the same images (and D gives
the same logits) within the forward parity bound, BN with running and with batch statistics."""
from __future__ import annotations

import backends

import numpy as np
import pytest

from common.data import noise
from common import canonical
from common.spec import model_spec
from tests.support.backends import require_backend, shared_init_backend
from tests.support.tolerances import FORWARD_ATOL, WEIGHT_TRANSFER, assert_within

PRESET, BATCH, STEPS = "mnist32", 16, 4


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """PyTorch after STEPS iterations (non-trivial BN running statistics), exported to a file
    and read back, with its own outputs on fixed inputs."""
    require_backend("pytorch")
    spec = model_spec(PRESET)
    torch_backend = shared_init_backend("pytorch", PRESET)
    rng = np.random.default_rng(3)
    p = spec.preset
    for i in range(STEPS):
        real = np.tanh(rng.standard_normal((BATCH, p.channels, p.image_size, p.image_size))).astype(np.float32)
        torch_backend.train_step(real, noise.iteration_noise(0, i, BATCH, p.nz))
    path = tmp_path_factory.mktemp("transfer") / "trained.npz"
    canonical.save(path, torch_backend.export_weights(), spec)
    z = noise.fixed_noise(7, BATCH, p.nz)
    x = np.tanh(rng.standard_normal((BATCH, p.channels, p.image_size, p.image_size))).astype(np.float32)
    outputs = {(net, train): (torch_backend.generate(z, train) if net == "G" else
                              torch_backend.discriminate(x, train))
               for net in "GD" for train in (False, True)}
    return path, z, x, outputs


@pytest.mark.parametrize("name", [n for n in backends.NAMES if n != "pytorch"])
@pytest.mark.parametrize("train", [False, True], ids=["running-stats", "batch-stats"])
def test_pytorch_trained_weights_give_the_same_outputs_in(trained, name, train):
    require_backend(name)
    path, z, x, ref = trained
    loaded, spec = canonical.load(path)
    backend = shared_init_backend(name, PRESET)
    backend.load_weights(loaded)
    for net, got in (("G", backend.generate(z, train)), ("D", backend.discriminate(x, train))):
        want = ref[net, train]
        assert got.shape == want.shape
        # SPEC.md's forward bound (derived in tests/backends/test_backend_parity.py), as at initialisation
        assert_within(WEIGHT_TRANSFER, f"{net} {'train' if train else 'inference'}", got, want, FORWARD_ATOL,
                      max(1.0, np.abs(want).max()))
    # and the trained weights really moved from the shared initialisation
    init = canonical.draw_initial_weights(spec, 0)
    assert np.abs(loaded["G.bn0.running_mean"] - init["G.bn0.running_mean"]).max() > 1e-3
