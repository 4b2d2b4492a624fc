"""Floating-point operations of one spec training iteration, counted from the layer table.

Model FLOPs, as MFU is usually defined: only the arithmetic the spec's iteration needs, counted
once, whatever a framework does besides (recomputation, gradients it computes and discards).
Convolutions and transposed convolutions only, 2 FLOPs per multiply-add; BN, activations, the
loss and Adam add well under 1% at these widths and are left out. Per image, for one iteration:

    G forward once                                  F_G
    D forward on real, fake (D step), fake (G step) 3 F_D
    D step backward, real and fake: weight grads    2 F_D
      and input grads (none into the images)        2 (F_D - F_D0)
    G step: D input grads only (D's weights fixed)  F_D
      G weight grads, and input grads (none into z) F_G + (F_G - F_G0)

A layer's backward costs its forward once for the weight gradient and once for the input
gradient, so the total is 3 F_G - F_G0 + 7 F_D - 2 F_D0.
"""
from __future__ import annotations

from common.spec import LayerSpec, ModelSpec


def layer_flops(layer: LayerSpec) -> int:
    """Forward FLOPs of one conv/deconv for one image (2 per multiply-add)."""
    k2 = layer.kernel ** 2
    if layer.kind == "conv":  # every output pixel sums over in_channels x k x k
        macs = layer.out_channels * layer.out_size ** 2 * layer.in_channels * k2
    else:  # every input pixel scatters into out_channels x k x k
        macs = layer.in_channels * layer.in_size ** 2 * layer.out_channels * k2
    return 2 * macs


def forward_flops(layers: tuple[LayerSpec, ...]) -> int:
    return sum(layer_flops(layer) for layer in layers)


def iteration_flops_per_image(spec: ModelSpec) -> int:
    """Model FLOPs of one training iteration (SPEC.md) per image of the batch."""
    f_g, f_d = forward_flops(spec.generator), forward_flops(spec.discriminator)
    f_g0, f_d0 = layer_flops(spec.generator[0]), layer_flops(spec.discriminator[0])
    return 3 * f_g - f_g0 + 7 * f_d - 2 * f_d0


# Dense peak FLOP/s from NVIDIA's datasheets, no sparsity: fp32 is the CUDA-core rate (the spec
# runs keep TF32 off), bf16 the tensor-core rate. Matched on the name nvidia-smi reports, most
# specific first; anything else has no stated peak, and no fraction is printed for it.
DENSE_PEAKS = (  # (name fragment, {precision: FLOP/s})
    ("H100 PCIe", {"fp32": 51.2e12, "bf16": 756e12}),
    ("H100", {"fp32": 66.9e12, "bf16": 989.4e12}),   # SXM5 (nvidia-smi: "H100 80GB HBM3")
    ("H200", {"fp32": 66.9e12, "bf16": 989.4e12}),   # SXM; the H100 SXM's compute
    ("A100", {"fp32": 19.5e12, "bf16": 312e12}),
)


def dense_peak_flops(device_name: str, precision: str) -> float | None:
    """The GPU's dense peak FLOP/s at 'fp32' or 'bf16', or None when it is not in the table."""
    for fragment, peaks in DENSE_PEAKS:
        if fragment in device_name:
            return peaks.get(precision)
    return None
