"""Chainer-specific checks: what the shared parity tests cannot see from outside."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common.data import noise
from common.spec import model_spec
from tests.support import oracle
from tests.support.backends import require_backend, shared_init_backend

require_backend("chainer")
from backends.base import BackendOptions, BackendUnavailable  # noqa: E402
from backends.chainer import models  # noqa: E402
from backends.chainer.backend import Backend, chainer  # noqa: E402
from chainer.backends import cuda  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _backend(preset="mnist32", **options):
    return shared_init_backend("chainer", preset, **options)


def test_spec_values_replace_chainer_defaults():
    """Chainer's BN defaults to eps 2e-5; decay and Adam's values happen to be the spec's, but
    are set explicitly, and Adam's extras (eta, weight decay, AMSGrad, AdaBound) do nothing."""
    spec = model_spec("mnist32")
    b = _backend()
    bns = b.G.batchnorms() + b.D.batchnorms()
    assert len(bns) == sum(layer.batchnorm for layer in spec.layers)
    assert all(bn.eps == spec.bn.eps != 2e-5 and bn.decay == spec.bn.decay for bn in bns)
    for opt in (b.opt_G, b.opt_D):
        hp = opt.hyperparam
        assert (hp.alpha, hp.beta1, hp.beta2, hp.eps) == (spec.adam.lr, spec.adam.beta1,
                                                          spec.adam.beta2, spec.adam.eps)
        assert hp.eta == 1.0 and hp.weight_decay_rate == spec.adam.weight_decay == 0
        assert not hp.amsgrad and not hp.adabound
    assert all(link.b is None for name, link in models.layers(b.nets(), spec) if "conv" in name)


def test_deconvolution_backward_without_input_gradient_is_patched():
    """G's first layer: only W needs a gradient. Unpatched chainer 7.8.1 raises "too many
    values to unpack" here (backends/compat.py); patched, W's gradient is the oracle's."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 1, 1)).astype(np.float32)
    link = chainer.links.Deconvolution2D(5, 3, 4, 1, 0, nobias=True,
                                         initialW=rng.standard_normal((5, 3, 4, 4)).astype(np.float32))
    gy = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    loss = chainer.functions.sum(link(x) * gy)
    gw, = chainer.grad([loss], [link.W])
    ref = oracle.conv_transpose2d_backward_weight(gy, x, link.W.shape, 1, 0)
    np.testing.assert_allclose(gw.array, ref, rtol=1e-5, atol=1e-5)


def test_import_is_quiet_and_survives_numpy_without_sctypes():
    """A fresh interpreter: importing the backend prints no warning (pkg_resources',
    numpy.distutils'), and with np.sctypes removed (numpy 2 has none) the shim restores
    numpy 1.x's lists, so chainer.functions imports."""
    code = ("import numpy as np, json\n"
            "np.__dict__.pop('sctypes', None)\n"
            "import backends.chainer.backend\n"
            "print(json.dumps({k: [t.__name__ for t in v] for k, v in np.sctypes.items()}))\n")
    proc = subprocess.run([sys.executable, "-W", "default", "-c", code], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    restored = json.loads(proc.stdout)
    assert restored["int"] == ["int8", "int16", "int32", "int64"]
    assert restored["float"] == ["float16", "float32", "float64", "longdouble"]
    if hasattr(np, "sctypes"):  # numpy 1.x: the very lists it had
        assert restored == {k: [t.__name__ for t in v] for k, v in np.sctypes.items()}
    assert proc.stderr == ""


def test_cudnn_advice_is_silenced_only_where_no_cudnn_can_exist():
    """Chainer's import warns 'cuDNN is not enabled. Please reinstall CuPy after you install
    cudnn' wherever CuPy has none (seen with cupy-cuda13x 14.2, the GPU node's). On CuPy 14 that
    cannot help (cuDNN removed); on CuPy 13 and older it can, so there the warning stays."""
    from backends.compat import cudnn_removed
    assert cudnn_removed("14.2.0") and cudnn_removed("15.0.0a1")
    assert not cudnn_removed("13.6.0") and not cudnn_removed("7.8.0") and not cudnn_removed(None)


@pytest.mark.skipif(cuda.available, reason="checks the no-CuPy error path")
def test_gpu_requested_without_cupy_is_a_clear_error():
    with pytest.raises(BackendUnavailable, match="--device gpu: chainer cannot use a GPU: CuPy"):
        Backend(model_spec("mnist32"), BackendOptions(device="gpu"))


def test_auto_device_on_this_machine():
    spec = model_spec("mnist32")
    b = Backend(spec, BackendOptions(device="auto"))
    info = b.device_info()
    assert info["device"] == ("gpu" if "cupy:0" in " ".join(Backend.probe()["devices"]) else "cpu")
    assert info["framework_version"] == chainer.__version__ and info["name"]
    memory = b.peak_memory()
    assert memory["bytes"] > 0 and memory["kind"] == ("rss" if info["device"] == "cpu"
                                                      else "device-allocator")


def _batches(start, stop, n=16):
    rng = np.random.default_rng(0)
    images = np.tanh(rng.standard_normal((64, 1, 32, 32))).astype(np.float32)
    return noise.iterate_batches(images, noise.BatchPlan(len(images), n, seed=0), 100, start, stop)


def test_trainer_log_and_snapshots_when_a_directory_is_given(tmp_path):
    """The Trainer's LogReport and snapshot extensions (off by default) write where asked: the
    log holds the means of the losses handed to on_step, the snapshot the models, optimizer
    state and iteration at that point."""
    b = _backend()
    b.trainer_out, b.snapshot_every, b.log_every = str(tmp_path), 2, 2
    calls = []
    b.train(_batches(2, 6), 2, lambda *a: calls.append(a))
    assert [c[0] for c in calls] == [2, 3, 4, 5]
    log = json.loads((tmp_path / "log").read_text())  # iteration: iterations done
    assert [entry["iteration"] for entry in log] == [4, 6]
    for entry, steps in zip(log, (calls[:2], calls[2:])):
        assert entry["loss_d"] == pytest.approx(np.mean([c[1] for c in steps]), rel=1e-6)
        assert entry["loss_g"] == pytest.approx(np.mean([c[2] for c in steps]), rel=1e-6)
    with np.load(tmp_path / "snapshot_iter_6") as snap:
        assert int(snap["updater/iteration"]) == 6
        assert int(snap["updater/optimizer:gen/t"]) == 4
        exported = b.export_weights()
        np.testing.assert_array_equal(snap["updater/model:gen/deconv0/W"], exported["G.deconv0.weight"])
        np.testing.assert_array_equal(snap["updater/model:dis/bn1/avg_var"], exported["D.bn1.running_var"])
    assert (tmp_path / "snapshot_iter_4").exists()


def test_trainer_leaves_nothing_behind_by_default(tmp_path, monkeypatch):
    """Without a trainer directory the Trainer runs in a temporary one, removed afterwards,
    and the log stays in memory: nothing lands in the working directory."""
    monkeypatch.chdir(tmp_path)
    b = _backend()
    b.train(_batches(0, 2), 0, lambda *a: None)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_gpu_style_loss_fetch_every_k_steps_reports_each_step(monkeypatch):
    """With losses fetched every K steps (the GPU setting), every iteration still gets its own
    on_step call, in order, with its own losses, including a last partial group."""
    ref, calls = [], []
    _backend().train(_batches(0, 5), 0, lambda *a: ref.append(a))
    b = _backend()
    monkeypatch.setattr(type(b), "fetch_every", 2)  # the GPU's fetch interval; the arrays stay numpy
    b.train(_batches(0, 5), 0, lambda *a: calls.append(a))
    assert [c[:3] for c in calls] == [r[:3] for r in ref]
    # the first step alone (its own sync: compile and autotune are its time), then in twos
    assert calls[1][3] == calls[2][3] and calls[3][3] == calls[4][3]  # timed together


def test_an_exception_from_on_step_ends_the_loop_quietly(capsys):
    """The harness stops a run by raising from on_step (divergence, interrupt): the Trainer
    ends at that iteration and re-raises it, without printing its own loop traceback."""
    class Stop(Exception):
        pass

    calls = []

    def on_step(*args):
        calls.append(args)
        if len(calls) == 2:
            raise Stop

    with pytest.raises(Stop):
        _backend().train(_batches(0, 5), 0, on_step)
    assert [c[0] for c in calls] == [0, 1]
    assert capsys.readouterr().err == ""
