"""Tests for common.spec: the layer table, canonical names and the spec's numbers (SPEC.md)."""
from __future__ import annotations

import dataclasses
import math

import pytest

from common import spec as spec_mod
from common.spec import (
    BN_RUNNING, BN_TENSORS, BN_TRAINABLE, PRESETS, AdamSpec, BatchNormSpec, LayerSpec, LossSpec,
    ModelSpec, Preset, model_spec,
)
from tests.support import oracle

K = 4  # every conv and deconv is 4x4


def _channels(layers):
    return [layers[0].in_channels] + [l.out_channels for l in layers]


def _sizes(layers):
    return [layers[0].in_size] + [l.out_size for l in layers]


# ----- presets -----
def test_presets_match_spec_table():
    m, d = PRESETS["mnist32"], PRESETS["dcgan64"]
    assert (m.image_size, m.channels, m.nz, m.ngf, m.ndf) == (32, 1, 100, 64, 64)
    assert (d.image_size, d.channels, d.nz, d.ngf, d.ndf) == (64, 3, 100, 64, 64)


def test_unknown_preset_error_lists_valid_names():
    with pytest.raises(ValueError) as info:
        model_spec("celeba128")
    msg = str(info.value)
    assert "celeba128" in msg
    for name in PRESETS:
        assert name in msg


def test_model_spec_accepts_preset_object():
    assert model_spec(PRESETS["dcgan64"]).preset.name == "dcgan64"


@pytest.mark.parametrize("size", [8, 24, 48, 0])
def test_preset_rejects_image_size_that_is_not_a_power_of_two_at_least_16(size):
    with pytest.raises(ValueError, match="power of two"):
        Preset("bad", image_size=size, channels=1)


# ----- layer tables -----
def test_mnist32_generator_channels_and_sizes():
    g = model_spec("mnist32").generator
    assert _channels(g) == [100, 256, 128, 64, 1]
    assert _sizes(g) == [1, 4, 8, 16, 32]


def test_mnist32_discriminator_channels_and_sizes():
    d = model_spec("mnist32").discriminator
    assert _channels(d) == [1, 64, 128, 256, 1]
    assert _sizes(d) == [32, 16, 8, 4, 1]


def test_dcgan64_generator_channels_and_sizes():
    g = model_spec("dcgan64").generator
    assert _channels(g) == [100, 512, 256, 128, 64, 3]
    assert _sizes(g) == [1, 4, 8, 16, 32, 64]


def test_dcgan64_discriminator_mirrors_generator():
    s = model_spec("dcgan64")
    d = s.discriminator
    assert _channels(d) == [3, 64, 128, 256, 512, 1]
    assert _sizes(d) == [64, 32, 16, 8, 4, 1]
    # Mirror: D's widths are G's reversed, except the ends (image channels / one logit vs nz).
    assert _channels(d)[1:-1] == _channels(s.generator)[1:-1][::-1]
    assert _sizes(d) == _sizes(s.generator)[::-1]


@pytest.mark.parametrize("preset", list(PRESETS))
def test_layer_sizes_chain_and_follow_conv_arithmetic(preset):
    s = model_spec(preset)
    for net in (s.generator, s.discriminator):
        for prev, nxt in zip(net, net[1:]):
            assert prev.out_channels == nxt.in_channels
            assert prev.out_size == nxt.in_size
        for l in net:
            if l.kind == "deconv":
                assert l.out_size == (l.in_size - 1) * l.stride - 2 * l.pad + l.kernel
            else:
                assert l.out_size == (l.in_size + 2 * l.pad - l.kernel) // l.stride + 1
    assert s.generator[-1].out_shape == (s.preset.channels, s.preset.image_size, s.preset.image_size)
    assert s.discriminator[0].in_shape == s.generator[-1].out_shape
    assert s.discriminator[-1].out_shape == (1, 1, 1)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_kernel_stride_pad(preset):
    s = model_spec(preset)
    g, d = s.generator, s.discriminator
    assert all(l.kernel == K for l in g + d)
    # G: first deconv k4 s1 p0, then k4 s2 p1.
    assert (g[0].stride, g[0].pad) == (1, 0)
    assert all((l.stride, l.pad) == (2, 1) for l in g[1:])
    # D: k4 s2 p1, last conv k4 s1 p0.
    assert all((l.stride, l.pad) == (2, 1) for l in d[:-1])
    assert (d[-1].stride, d[-1].pad) == (1, 0)
    assert all(l.kind == "deconv" for l in g) and all(l.kind == "conv" for l in d)
    assert all(l.net == "G" for l in g) and all(l.net == "D" for l in d)
    assert [l.index for l in g] == list(range(len(g)))
    assert [l.index for l in d] == list(range(len(d)))


@pytest.mark.parametrize("preset", list(PRESETS))
def test_batchnorm_placement(preset):
    s = model_spec(preset)
    g, d = s.generator, s.discriminator
    assert [l.batchnorm for l in g] == [True] * (len(g) - 1) + [False]   # none on G's last
    assert [l.batchnorm for l in d] == [False] + [True] * (len(d) - 2) + [False]  # none on D's first/last


@pytest.mark.parametrize("preset", list(PRESETS))
def test_activations(preset):
    s = model_spec(preset)
    g, d = s.generator, s.discriminator
    assert [l.activation for l in g] == ["relu"] * (len(g) - 1) + ["tanh"]
    assert [l.activation for l in d] == ["leaky_relu"] * (len(d) - 1) + ["none"]  # logits, no sigmoid


def test_layers_is_generator_then_discriminator():
    s = model_spec("mnist32")
    assert s.layers == s.generator + s.discriminator
    assert s.n_layers == 4 and model_spec("dcgan64").n_layers == 5


# ----- canonical names and shapes -----
def test_layer_and_bn_names():
    g, d = model_spec("mnist32").generator, model_spec("mnist32").discriminator
    assert [l.name for l in g] == ["G.deconv0", "G.deconv1", "G.deconv2", "G.deconv3"]
    assert [l.name for l in d] == ["D.conv0", "D.conv1", "D.conv2", "D.conv3"]
    assert [l.bn_name for l in g] == ["G.bn0", "G.bn1", "G.bn2", None]
    # The BN is named by its conv's index: D.conv1 -> D.bn1, and D.conv0 has none.
    assert [l.bn_name for l in d] == [None, "D.bn1", "D.bn2", None]


def _expected_keys(g_bn, g_n, d_bn, d_n):
    keys = []
    for i in range(g_n):
        keys.append(f"G.deconv{i}.weight")
        if i in g_bn:
            keys += [f"G.bn{i}.{t}" for t in ("gamma", "beta", "running_mean", "running_var")]
    for i in range(d_n):
        keys.append(f"D.conv{i}.weight")
        if i in d_bn:
            keys += [f"D.bn{i}.{t}" for t in ("gamma", "beta", "running_mean", "running_var")]
    return keys


def test_canonical_key_names_and_order_mnist32():
    keys = list(model_spec("mnist32").parameter_shapes())
    assert keys == _expected_keys({0, 1, 2}, 4, {1, 2}, 4)
    assert keys[:6] == ["G.deconv0.weight", "G.bn0.gamma", "G.bn0.beta", "G.bn0.running_mean",
                        "G.bn0.running_var", "G.deconv1.weight"]
    i = keys.index("D.conv0.weight")
    assert keys[i:i + 3] == ["D.conv0.weight", "D.conv1.weight", "D.bn1.gamma"]
    assert not any("num_batches_tracked" in k or "bias" in k for k in keys)  # no extras, no bias


def test_canonical_key_names_and_order_dcgan64():
    keys = list(model_spec("dcgan64").parameter_shapes())
    assert keys == _expected_keys({0, 1, 2, 3}, 5, {1, 2, 3}, 5)


def test_bn_tensor_name_constants():
    assert BN_TRAINABLE == ("gamma", "beta")
    assert BN_RUNNING == ("running_mean", "running_var")
    assert BN_TENSORS == BN_TRAINABLE + BN_RUNNING


def test_weight_shapes_in_pytorch_layout_mnist32():
    shapes = model_spec("mnist32").parameter_shapes()
    # deconv (in, out, kh, kw)
    assert shapes["G.deconv0.weight"] == (100, 256, 4, 4)
    assert shapes["G.deconv1.weight"] == (256, 128, 4, 4)
    assert shapes["G.deconv2.weight"] == (128, 64, 4, 4)
    assert shapes["G.deconv3.weight"] == (64, 1, 4, 4)
    # conv (out, in, kh, kw)
    assert shapes["D.conv0.weight"] == (64, 1, 4, 4)
    assert shapes["D.conv1.weight"] == (128, 64, 4, 4)
    assert shapes["D.conv2.weight"] == (256, 128, 4, 4)
    assert shapes["D.conv3.weight"] == (1, 256, 4, 4)
    # BN vectors have the width of the conv they follow
    assert shapes["G.bn0.gamma"] == (256,) and shapes["G.bn2.running_var"] == (64,)
    assert shapes["D.bn1.beta"] == (128,) and shapes["D.bn2.running_mean"] == (256,)


def test_weight_shapes_in_pytorch_layout_dcgan64():
    shapes = model_spec("dcgan64").parameter_shapes()
    assert shapes["G.deconv0.weight"] == (100, 512, 4, 4)
    assert shapes["G.deconv4.weight"] == (64, 3, 4, 4)
    assert shapes["D.conv0.weight"] == (64, 3, 4, 4)
    assert shapes["D.conv3.weight"] == (512, 256, 4, 4)
    assert shapes["D.conv4.weight"] == (1, 512, 4, 4)
    assert shapes["G.bn3.gamma"] == (64,) and shapes["D.bn3.gamma"] == (512,)


def test_layerspec_weight_shape_distinguishes_conv_from_deconv():
    conv = LayerSpec("D", 0, "conv", 3, 7, 4, 2, 1, 8, 4, True, "leaky_relu")
    deconv = LayerSpec("G", 0, "deconv", 3, 7, 4, 2, 1, 4, 8, True, "relu")
    assert conv.weight_shape == (7, 3, 4, 4)
    assert deconv.weight_shape == (3, 7, 4, 4)


# ----- parameter counts -----
def test_dcgan64_parameter_counts_match_published_pytorch_dcgan():
    s = model_spec("dcgan64")
    assert s.parameter_count("G") == 3_576_704
    assert s.parameter_count("D") == 2_765_568
    assert s.parameter_count() == 3_576_704 + 2_765_568


def test_mnist32_parameter_counts_by_hand():
    kk = 4 * 4
    # G: 100->256->128->64->1, BN after the first three deconvs (gamma + beta each).
    g_conv = 100 * 256 * kk + 256 * 128 * kk + 128 * 64 * kk + 64 * 1 * kk  # 409600+524288+131072+1024
    g_bn = 2 * (256 + 128 + 64)
    # D: 1->64->128->256->1, BN after conv1 and conv2 only.
    d_conv = 1 * 64 * kk + 64 * 128 * kk + 128 * 256 * kk + 256 * 1 * kk  # 1024+131072+524288+4096
    d_bn = 2 * (128 + 256)
    assert g_conv + g_bn == 1_066_880 and d_conv + d_bn == 661_248  # the arithmetic itself
    s = model_spec("mnist32")
    assert s.parameter_count("G") == g_conv + g_bn
    assert s.parameter_count("D") == d_conv + d_bn


def test_parameter_count_with_running_statistics():
    s = model_spec("mnist32")
    running_g = 2 * (256 + 128 + 64)
    running_d = 2 * (128 + 256)
    assert s.parameter_count("G", trainable_only=False) == s.parameter_count("G") + running_g
    assert s.parameter_count("D", trainable_only=False) == s.parameter_count("D") + running_d
    assert s.parameter_count(trainable_only=False) == sum(
        math.prod(v) for v in s.parameter_shapes().values())


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_trainable_keys_are_the_tensors_with_gradients(preset):
    """What every backend's gradient export covers: the weights and BN gamma/beta in
    parameter_shapes' order (the oracle's own list, built from the layer table), no statistics."""
    s = model_spec(preset)
    assert s.trainable_keys("G") == oracle.trainable_keys(s, "G")
    assert s.trainable_keys() == oracle.trainable_keys(s, "G") + oracle.trainable_keys(s, "D")
    assert sum(math.prod(s.parameter_shapes()[k]) for k in s.trainable_keys("D")) == s.parameter_count("D")


# ----- spec values -----
def test_batchnorm_values():
    bn = model_spec("mnist32").bn
    assert bn.eps == 1e-5
    assert bn.new_batch_weight == 0.1
    assert bn.decay == pytest.approx(0.9)
    assert (bn.gamma_init_mean, bn.gamma_init_std) == (1.0, 0.02)


def test_adam_values():
    a = model_spec("mnist32").adam
    assert (a.lr, a.beta1, a.beta2, a.eps, a.weight_decay) == (2e-4, 0.5, 0.999, 1e-8, 0.0)


def test_model_values():
    s = model_spec("dcgan64")
    assert s.leaky_slope == 0.2
    assert s.init_std == 0.02
    assert s.kernel == 4
    assert (s.loss.real_label, s.loss.fake_label) == (1.0, 0.0)


@pytest.mark.parametrize("obj, attr", [
    (PRESETS["mnist32"], "nz"),
    (BatchNormSpec(), "eps"),
    (AdamSpec(), "lr"),
    (LossSpec(), "real_label"),
    (model_spec("mnist32"), "init_std"),
    (model_spec("mnist32").generator[0], "out_channels"),
])
def test_dataclasses_are_frozen(obj, attr):
    assert dataclasses.is_dataclass(obj)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, attr, 0)


def test_model_spec_is_a_value():
    # Two calls give equal objects (backends may compare specs, e.g. a loaded file's vs the run's).
    assert model_spec("mnist32") == model_spec("mnist32")
    assert model_spec("mnist32") != model_spec("dcgan64")
    assert isinstance(model_spec("mnist32"), ModelSpec)


def test_dataset_presets():
    assert spec_mod.DATASET_PRESETS["mnist"] == "mnist32"
    assert all(p in PRESETS for p in spec_mod.DATASET_PRESETS.values())
