"""MXNet-specific checks: what the shared parity tests cannot see from outside."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common import canonical
from common.spec import model_spec
from tests.support import oracle
from tests.support.backends import require_backend, shared_init_backend

require_backend("mxnet")
import mxnet as mx  # noqa: E402  (backends.mxnet imported it, with its shim, just above)

from backends.base import BackendOptions, BackendUnavailable  # noqa: E402
from backends.mxnet import models  # noqa: E402
from backends.mxnet import training  # noqa: E402
from backends.mxnet.backend import Backend  # noqa: E402
from backends.mxnet.models import executor  # noqa: E402
from backends.mxnet.runtime import ONEDNN  # noqa: E402

from tests.support.processes import with_repo_on_path  # noqa: E402
REPO = Path(__file__).resolve().parents[2]
# mx.nd.array touches scipy.sparse.csr, deprecated in SciPy (the backend filters it at runtime).
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:mxnet.ndarray.utils")


def _backend(preset="mnist32", **options):
    return shared_init_backend("mxnet", preset, **options)


def _batch(n, seed=1, preset="mnist32"):
    p = model_spec(preset).preset
    rng = np.random.default_rng(seed)
    shape = (n, p.channels, p.image_size, p.image_size)
    real = np.tanh(rng.standard_normal(shape)).astype(np.float32)
    return real, rng.standard_normal((n, p.nz)).astype(np.float32)


def _nodes(symbol, op):
    return [n for n in json.loads(symbol.tojson())["nodes"] if n["op"] == op]


def test_spec_values_replace_mxnet_defaults():
    """MXNet's BN defaults to fix_gamma=True (gamma frozen at 1) and eps 1e-3, LeakyReLU to slope
    0.25, Module's optimizer to rescale_grad = 1/batch; Adam's extras do nothing here."""
    spec = model_spec("mnist32")
    b = _backend()
    bns = _nodes(b.G.symbol, "BatchNorm") + _nodes(b.D.symbol, "BatchNorm")
    assert len(bns) == sum(layer.batchnorm for layer in spec.layers)
    for bn in bns:
        a = bn["attrs"]
        assert a["fix_gamma"] == "False" and a["use_global_stats"] == "False"
        assert float(a["eps"]) == spec.bn.eps and float(a["momentum"]) == spec.bn.decay
    leaky = _nodes(b.D.symbol, "LeakyReLU")
    assert len(leaky) == len(spec.discriminator) - 1
    assert all(n["attrs"]["act_type"] == "leaky" and float(n["attrs"]["slope"]) == spec.leaky_slope
               for n in leaky)
    convs = [n for sym in (b.G.symbol, b.D.symbol) for op in ("Convolution", "Deconvolution")
             for n in _nodes(sym, op)]
    assert convs and all(n["attrs"]["no_bias"] == "True" for n in convs)
    for module in (b.G, b.D):
        opt = module._optimizer
        assert isinstance(opt, mx.optimizer.Adam)
        assert (opt.beta1, opt.beta2) == (spec.adam.beta1, spec.adam.beta2)
        assert opt.rescale_grad == 1.0 and opt.clip_gradient is None and not opt.lazy_update
        assert opt.wd == spec.adam.weight_decay == 0
        # lr and eps carry the float32 compensation (next test): within 1e-4 of the spec's.
        assert opt.lr == pytest.approx(spec.adam.lr, rel=1e-4)
        assert opt.epsilon == pytest.approx(spec.adam.eps, rel=1e-4)


def test_adam_operator_takes_float32_hyperparameters_and_the_backend_compensates():
    """mx.nd.adam_update with the spec's values updates 6.4e-6 (relative) too far: its
    (1 - beta2) is 1 - float32(0.999) = 0.000999987. With the backend's lr and epsilon it is
    the spec's folded Adam, three steps, to the bound of the shared optimizer test (1e-6)."""
    spec = model_spec("mnist32")
    rng = np.random.default_rng(0)
    p0 = np.zeros(1000, np.float32)  # like BN's beta: the update is all there is to see
    grads = [(rng.standard_normal(1000) * 10.0 ** rng.integers(-9, -2)).astype(np.float32)
             for _ in range(3)]
    a = spec.adam
    raw = {"lr": a.lr, "epsilon": a.eps}
    opt = training.adam(models.build(spec, [mx.cpu()])[0], a)  # the backend's Adam on a module
    fixed = {"lr": opt.lr, "epsilon": opt.epsilon}
    worst = {}
    for label, hp in (("raw", raw), ("compensated", fixed)):
        w, m, v = mx.nd.array(p0), mx.nd.zeros(1000), mx.nd.zeros(1000)
        ref, rm, rv = p0.astype(np.float64), None, None
        worst[label] = 0.0
        for t, g in enumerate(grads, start=1):
            lr_t = hp["lr"] * math.sqrt(1 - a.beta2 ** t) / (1 - a.beta1 ** t)  # as mx Adam does
            mx.nd.adam_update(w, mx.nd.array(g), m, v, out=w, lr=lr_t, beta1=a.beta1,
                              beta2=a.beta2, epsilon=hp["epsilon"], wd=0.0, rescale_grad=1.0)
            ref, rm, rv = oracle.adam_update(ref, g, rm, rv, t, a, "folded")
            step_err = np.abs(w.asnumpy() - ref).max() / max(np.abs(ref).max(), a.lr)
            worst[label] = max(worst[label], step_err)
    assert worst["raw"] > 1e-6  # the framework fact: fails the spec's bound uncompensated
    assert worst["compensated"] <= 1e-6


def test_running_statistics_update_in_backward_with_the_biased_variance():
    """The fact the iteration is arranged around (mxnet 1.9.1, oneDNN or not): forward with
    is_train=True leaves BN's moving statistics alone, backward adds 0.1 x the batch mean and
    the *biased* batch variance."""
    spec = model_spec("mnist32")
    b = _backend()
    _, z = _batch(16)
    aux = executor(b.G).aux_dict
    before = {k: v.asnumpy().copy() for k, v in aux.items()}
    fake = training.generator_forward(b.G, b.array(z))
    mx.nd.waitall()
    for k, v in aux.items():
        np.testing.assert_array_equal(v.asnumpy(), before[k], err_msg=k)
    b.G.backward([mx.nd.ones(fake.shape)])
    _, cache = oracle.forward(spec, canonical.draw_initial_weights(spec, 0), "G", z, train=True)
    w = spec.bn.new_batch_weight
    for bn, stats in cache["bn_stats"].items():
        layer = bn.split(".")[1]
        mean, var = aux[f"{layer}_moving_mean"].asnumpy(), aux[f"{layer}_moving_var"].asnumpy()
        assert np.abs(mean - w * stats["mean"]).max() <= 1e-6, bn
        assert np.abs(var - ((1 - w) + w * stats["var_biased"])).max() <= 1e-6, bn
    # G.bn0 normalises m = N·4·4 = 256 values per channel: the unbiased variance would be
    # larger by var/255, far above float32 rounding.
    stats = cache["bn_stats"]["G.bn0"]
    var = aux["bn0_moving_var"].asnumpy()
    assert np.abs(var - ((1 - w) + w * stats["var_unbiased"])).max() > 1e-5
    assert Backend.running_var_unbiased is False and Backend.adam_convention == "folded"


_PLAIN_ONE_CHANNEL_DECONV = """
import numpy as np
import backends.mxnet
import mxnet as mx
x = mx.sym.Variable("x")
y = mx.sym.Deconvolution(x, kernel=(4, 4), stride=(2, 2), pad=(1, 1), num_filter=1, no_bias=True)
exe = y.simple_bind(mx.cpu(), x=(8, 64, 16, 16))
exe.arg_dict["x"][:] = np.random.default_rng(0).standard_normal((8, 64, 16, 16))
exe.forward(is_train=True)
exe.backward([mx.nd.ones((8, 1, 32, 32))])
mx.nd.waitall()
print("backward ok")
"""


@pytest.mark.slow
@pytest.mark.skipif(not ONEDNN, reason="the workaround's reason exists only with oneDNN (MKLDNN)")
def test_plain_one_channel_deconvolution_still_fails_under_onednn():
    """Why models.py builds G's one-channel last layer from parts: the plain layer's input
    gradient fails under oneDNN (run in its own interpreter: the engine is left broken). When a
    new mxnet passes this, the workaround can go."""
    proc = subprocess.run([sys.executable, "-c", _PLAIN_ONE_CHANNEL_DECONV], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "backward ok" not in proc.stdout
    assert "could not create a primitive descriptor for a reorder primitive" in proc.stderr


def test_one_channel_layer_adds_no_parameter_and_matches_the_plain_layer_without_onednn():
    """The workaround graph's arguments are exactly the spec's parameters (the zero block is an
    operator); its value and gradients equal a plain one-channel Deconvolution's, computed
    without oneDNN (mxnet's own kernel in float64, which oneDNN does not take)."""
    spec = model_spec("mnist32")
    layer = spec.generator[-1]
    assert layer.out_channels == 1
    expected = ["z"] + [weights_key.split(".", 1)[1].replace(".", "_")
                        for weights_key in spec.parameter_shapes()
                        if weights_key.startswith("G.") and "running" not in weights_key]
    assert models.generator(spec).list_arguments() == expected

    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, layer.in_channels, layer.in_size, layer.in_size))
    w = rng.standard_normal(layer.weight_shape) * 0.02
    gy = rng.standard_normal((4, 1, layer.out_size, layer.out_size))
    k, s, p = layer.kernel, layer.stride, layer.pad
    geometry = dict(kernel=(k, k), stride=(s, s), pad=(p, p), no_bias=True)
    results = {}
    for name, dtype in (("workaround", np.float32), ("plain float64", np.float64)):
        xv = mx.sym.Variable("x", dtype=dtype)
        if name == "workaround":
            y = models.one_channel_deconv(xv, layer, geometry)
        else:
            y = mx.sym.Deconvolution(xv, weight=mx.sym.Variable("deconv3_weight", dtype=dtype),
                                     num_filter=1, **geometry)
        args = {"x": mx.nd.array(x, dtype=dtype), "deconv3_weight": mx.nd.array(w, dtype=dtype)}
        grads = {n: mx.nd.zeros_like(a) for n, a in args.items()}
        exe = y.bind(mx.cpu(), args, args_grad=grads)
        out = exe.forward(is_train=True)[0].asnumpy()
        exe.backward([mx.nd.array(gy, dtype=dtype)])
        results[name] = (out, grads["x"].asnumpy(), grads["deconv3_weight"].asnumpy())
    refs = (oracle.conv_transpose2d(x, w, s, p),) + oracle.conv_transpose2d_backward(gy, x, w, s, p)
    for got, ref in zip(results["workaround"], refs):  # value, input gradient, weight gradient
        assert np.abs(got - ref).max() <= 1e-5 * max(1.0, np.abs(ref).max())  # float32 bound
    for got, ref in zip(results["plain float64"], refs):
        assert np.abs(got - ref).max() <= 1e-12 * max(1.0, np.abs(ref).max())


def test_loss_is_the_stable_bce_with_logits_and_its_gradient():
    """training.bce_with_logits against the oracle at logits where a naive log(sigmoid) overflows
    or cancels: values within float32 rounding of |l| (ulp(100) / 2 ≈ 4e-6), finite, and the
    gradient (sigmoid(l) - t)/N."""
    logits = np.array([-100.0, -20.0, -1.5, 0.0, 0.7, 20.0, 100.0], dtype=np.float32)
    for target in (0.0, 1.0, 0.9):
        lv, tv = mx.sym.Variable("l"), mx.sym.Variable("t")
        loss = mx.sym.MakeLoss(training.bce_with_logits(lv, tv))
        args = {"l": mx.nd.array(logits), "t": mx.nd.full(logits.shape, target)}
        grads = {"l": mx.nd.zeros(logits.shape), "t": mx.nd.zeros(logits.shape)}
        exe = loss.bind(mx.cpu(), args, args_grad=grads, grad_req={"l": "write", "t": "null"})
        value = float(exe.forward(is_train=True)[0].asscalar())
        exe.backward()
        ref, ref_grad = oracle.bce_with_logits(logits, target)
        assert math.isfinite(value) and abs(value - ref) <= 1e-5, target
        assert np.abs(grads["l"].asnumpy() - ref_grad).max() <= 1e-7, target


def test_batch_size_changes_keep_d_step_and_g_step_on_the_same_weights():
    """Module reshapes its executors when the batch size changes; D_G is bound on D's arrays and
    must still see D's updated weights and running statistics afterwards (loss_G against the
    oracle at D's current weights)."""
    spec = model_spec("mnist32")
    b = _backend()
    for n in (16, 8):
        b.train_step(*_batch(n, seed=n))
    w = b.export_weights()
    real, z = _batch(4, seed=3)
    ref = oracle.gradients(spec, w, real, z)
    got = b.gradients(real, z)
    assert abs(got["loss_g"] - ref["loss_g"]) <= 1e-5 and abs(got["loss_d"] - ref["loss_d"]) <= 1e-5
    d, d_g = executor(b.D), executor(b.D_G)
    for name in list(d.aux_dict) + b.D._param_names:
        arrays = d.aux_dict if name in d.aux_dict else d.arg_dict
        other = d_g.aux_dict if name in d_g.aux_dict else d_g.arg_dict
        np.testing.assert_array_equal(other[name].asnumpy(), arrays[name].asnumpy(), err_msg=name)


@pytest.mark.skipif(mx.context.num_gpus() > 0, reason="checks the no-GPU error path")
def test_gpu_requested_without_gpu_is_a_clear_error():
    with pytest.raises(BackendUnavailable, match="--device gpu: mxnet .* sees no GPU"):
        Backend(model_spec("mnist32"), BackendOptions(device="gpu"))


def test_fast_paths_are_refused_not_ignored():
    with pytest.raises(BackendUnavailable, match="no channels_last"):
        Backend(model_spec("mnist32"), BackendOptions(device="cpu", channels_last=True))


def test_bf16_is_an_amp_graph_with_float32_parameters():
    """The bf16 ablation (models.bf16_graph): casts in the graph, float32 parameters, and a first
    D loss close to spec's (the first D pass runs before any update: bf16's 8-bit mantissa,
    u = 2^-9 per op, over a handful of layers: 2e-2 relative)."""
    spec = model_spec("mnist32")
    b = Backend(spec, BackendOptions(device="cpu", bf16=True))
    assert any("amp_cast" in n for n in b.D.symbol.get_internals().list_outputs())
    assert all(a.dtype == np.float32 for a in models.executor(b.D).arg_dict.values())
    s = Backend(spec, BackendOptions(device="cpu"))
    weights = canonical.draw_initial_weights(spec, 0)
    real, z = np.random.RandomState(0).uniform(-1, 1, (8, 1, 32, 32)).astype(np.float32), \
        np.random.RandomState(1).standard_normal((8, spec.preset.nz)).astype(np.float32)
    losses, moved = [], []
    for backend in (s, b):
        backend.load_weights(weights)
        losses.append(backend.train_step(real, z))
        after = executor(backend.D).arg_dict["conv1_weight"].asnumpy()
        moved.append(np.abs(after - weights["D.conv1.weight"]).max())
    assert losses[1][0] == pytest.approx(losses[0][0], rel=2e-2)
    # D's conv weights take their Adam step (amp_cast alone dropped grad_req 'add': they stayed put);
    # Adam's first step moves each weight by about lr whatever the gradient's size
    assert moved[1] == pytest.approx(moved[0], rel=0.1) and moved[0] > 0


def test_auto_device_and_what_is_recorded():
    b = Backend(model_spec("mnist32"), BackendOptions(threads=3))
    info = b.device_info()
    assert info["device"] == ("gpu" if mx.context.num_gpus() else "cpu")
    assert info["framework_version"] == mx.__version__
    assert info["threads"]["requested"] == 3
    assert info["threads"].get("OMP_NUM_THREADS") == os.environ.get("OMP_NUM_THREADS")
    mem = b.peak_memory()
    assert mem["bytes"] > 0
    if info["device"] == "cpu":
        assert mem["kind"] == "rss"


_RUN_QUIETLY_OR_NOT = """
import sys
import numpy as np
from backends.base import BackendOptions
from backends.mxnet.backend import Backend
from common.spec import model_spec
b = Backend(model_spec("mnist32"), BackendOptions(device="cpu", verbose=sys.argv[1] == "1"))
rng = np.random.default_rng(0)
real = np.tanh(rng.standard_normal((8, 1, 32, 32))).astype(np.float32)
z = rng.standard_normal((8, 100)).astype(np.float32)
b.train_step(real, z), b.gradients(real, z), b.generate(z), b.layer_output_shapes(z, real)
"""


@pytest.mark.slow
def test_mxnet_output_stays_out_of_the_terminal_unless_verbose():
    """A fresh interpreter with every warning shown (-W default): importing and running the
    backend prints nothing (mxnet's import-time DeprecationWarnings, its runtime warnings, its
    C++ log lines); with verbose=True mxnet's own output comes through."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MXNET_")}
    env["PYTHONPATH"] = with_repo_on_path()
    stderr = {}
    for verbose in ("0", "1"):
        proc = subprocess.run([sys.executable, "-W", "default", "-c", _RUN_QUIETLY_OR_NOT, verbose],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, proc.stderr[-2000:]
        stderr[verbose] = proc.stderr
    assert stderr["0"] == ""
    assert "mxnet" in stderr["1"] or "graph_executor" in stderr["1"]
