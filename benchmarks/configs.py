"""The configurations a benchmark cell can run, as run_all.py flags.

`spec` is what parity is proven on (full float32, no fast path). `best` is each framework's own
fast paths on the device, chosen from the measured ablation in benchmarks/README.md; a framework
without one says why instead of repeating its spec row under another name. A single fast path
(`bf16`, `channels_last`, `compile`, `xla`) or a `+`-joined set of them runs as an ablation cell
for the backends it applies to.
"""
from __future__ import annotations

# fast path -> (run_all.py flag or flags, the backends that have it)
FAST_PATHS = {
    "channels_last": ("--channels-last", ("pytorch",)),
    "bf16": ("--bf16", ("pytorch", "tensorflow", "mxnet", "jax")),  # autocast / mixed_bfloat16 / AMP graph / Flax dtype
    "compile": ("--compile", ("pytorch",)),              # torch.compile (Inductor), its default mode
    # torch.compile's max-autotune: Inductor benchmarks candidate kernels for every conv and
    # matmul and, on CUDA, captures CUDA graphs; it compiles for minutes (first-step column)
    "max_autotune": (("--compile", "--compile-mode", "max-autotune"), ("pytorch",)),
    "xla": ("--xla", ("tensorflow",)),                   # jit_compile
    "onednn": ("--onednn", ("jax",)),                    # XLA:CPU's classic runtime: oneDNN convolutions
}

# backend -> device -> fast paths in the best-available configuration, or the reason there is none.
BEST = {
    # CPU choices from the ablation on the 2-core AVX-512-BF16 VM, batch 64 (img/s, spec -> path;
    # benchmarks/results/ablations/): PyTorch channels_last+bf16 643 -> 1188 (mnist32), 116 -> 233
    # (dcgan64), torch.compile no faster (626, 129) and adding it to the pair slower; TensorFlow
    # bf16 669 -> 838 and 122 -> 178, XLA slower on this CPU (457, 88) with or without bf16;
    # Grappler's oneDNN bf16 rewrite as fast as Keras' policy within the noise, and nothing more
    # on top of it (benchmarks/README.md, "What was tried for TensorFlow's best").
    # GPU choices are the frameworks' documented fast paths, not measured: every grid in
    # benchmarks/results/ ran on a CPU, so no GPU row of spec or best has been timed yet.
    "pytorch": {"cpu": ("channels_last", "bf16"), "gpu": ("channels_last", "bf16", "compile")},
    "tensorflow": {"cpu": ("bf16",), "gpu": ("xla", "bf16")},
    # MXNet bf16 (issue 21): models.bf16_graph (MXNet AMP's convert_symbol, oneDNN bf16
    # Convolution; Deconvolution stays float32, in bf16 it segfaults in mxnet 1.9.1), spec and
    # bf16 backends from the same weights stepped alternately, batch 64, on the 2-core VM at load
    # 11.8 (only the ratio means anything). AMP's cast dropped grad_req 'add', so D's conv weights
    # never trained until each weight went through an identity (models.bf16_graph); with that,
    # mnist32 trains like spec (losses at step 10: 0.778/4.383 against 0.760/4.397) but its step
    # took 1632 ms against spec's 796 (2.05x slower); dcgan64 crashes (segfault in the next
    # host-to-device copy after a few bf16 steps). `python -m benchmarks.throughput --backend
    # mxnet --configs spec,bf16` runs it as an ablation. Also tried: oneDNN's fpmath mode bf16
    # (DNNL_DEFAULT_FPMATH_MODE=BF16: float32 tensors, bf16 math inside oneDNN, no graph change):
    # MXNet's oneDNN 2.4.4 takes it (DNNL_VERBOSE prints attr-fpmath_mode:fpmath_mode_bf16 on every
    # convolution) and picks the same float32 kernels (jit:avx512_common, x64:gemm:jit), 2 bare
    # steps at mnist32 batch 64, 2026-12-01: the mode permits the down-conversion, and neither
    # oneDNN build has a kernel that takes it on this CPU (no AMX). jaxlib 0.6.2's oneDNN 3.7.3 the same
    # (ONEDNN_DEFAULT_FPMATH_MODE=BF16, classic runtime: brg_conv_fwd:avx512_core with
    # attr-fpmath:bf16, float32 gemm_api), so it is no fast path for JAX here either.
    "mxnet": {
        "cpu": "none: its bf16 graph (AMP, oneDNN) was 2x slower than spec on mnist32 and "
               "crashes on dcgan64; bf16 Deconvolution segfaults (measured, benchmarks/configs.py)",
        "gpu": "none beyond the spec run: cuDNN autotuning is already on by default "
               "(MXNET_CUDNN_AUTOTUNE_DEFAULT=1)",
    },
    # Chainer (issue 21), cProfile of 5 backend steps, mnist32 batch 64: numpy tensordot 35% of
    # the time (45% with its reshape copies), im2col 19%, col2im 13%, leaky_relu forward 13%,
    # Chainer's own Python (FunctionNode.apply, type checks) under 1%. Tried: iDeep (ideep4py:
    # pip finds no distribution for this Python); float16 (chainer.config.dtype; numpy's float16
    # matmul is 0.1 GFLOP/s against float32's 21 here, 200x slower; numpy has no bfloat16);
    # chainer.config.type_check off (median step 2111 against 2003 ms with checks, 4 alternating
    # pairs at load 7.5-7.8: no gain, as the profile predicts); BLAS threads: OpenBLAS already
    # uses both cores (threadpoolctl); the GPU-only switches (cudnn, autotune) do nothing on a CPU.
    # JAX: XLA:CPU's default (thunk) runtime runs no convolution in oneDNN, so bf16 alone
    # (Flax's compute dtype) is no faster; the classic runtime (`onednn`) runs them in oneDNN,
    # bf16 included (ONEDNN_VERBOSE; backends/jax/runtime.py). Ablation, batch 64, median of 3
    # interleaved repeats, 2-core AMD EPYC VM, idle, 2026-12-01
    # (benchmarks/results/ablations/cpu-2core-2026-12-01-jax-*): mnist32 spec 300.5 img/s, bf16
    # 273.2, onednn 294.9, bf16+onednn 320.8 (1.07x); dcgan64 spec 41.1, bf16 38.2, onednn 43.2,
    # bf16+onednn 53.6 (1.30x). jaxlib 0.10.2 ignores the runtime flag: there this is bf16 alone.
    # Also tried on top of best, mnist32 batch 64, 3 interleaved rounds of run_all with XLA_FLAGS,
    # idle, 2026-12-01: --xla_cpu_enable_fast_math=true 385/358/338 img/s against best's
    # 361/346/361 (spec 314/335/320): no gain; --xla_cpu_use_mkl_dnn is no flag of jaxlib 0.6.2
    # (XLA aborts: "Unknown flag in XLA_FLAGS"). Why bf16 gains so little (ONEDNN_VERBOSE exec
    # times, docs/jax.md): oneDNN runs a third of the step's time as bf16 convolutions (1.7x their
    # float32 speed); the input-dilated ones (G's transposed convolutions, D's input gradients)
    # stay float32 in Eigen's convolution, 56% (mnist32) and 46% (dcgan64) of the bf16 step.
    # So `onednn` writes them as stride-1 phases oneDNN runs (backends/jax/models.py,
    # transpose_by_phases; 6173753): batch 64, 3 interleaved repeats, idle VM, 2026-12-01
    # (results/ablations/cpu-2core-2026-12-01-jax-phases-*): mnist32 spec 335.1, onednn 328.5,
    # bf16+onednn 462.0 (1.38x; FD at 300 iterations 569.7 against spec's 598.8); dcgan64 spec
    # 42.6, onednn 47.6, bf16+onednn 80.7 (1.89x).
    # GPU: the documented fast path, not measured.
    "jax": {"cpu": ("bf16", "onednn"),
            "gpu": ("bf16",)},
    "chainer": {
        "cpu": "none: iDeep has no wheel for this Python, float16 is 200x slower in numpy, "
               "type_check off and BLAS threads change nothing measurable (benchmarks/configs.py)",
        "gpu": "none beyond the spec run: the backend already turns cuDNN autotuning on",
    },
}


# backend -> device -> the best configuration with its slow-compiling alternative, which the GPU
# check runs as one more cell when its budget leaves time for the compile
# (benchmarks/gpu_check.py): torch.compile's max-autotune in place of its default mode.
BEST_ALTERNATIVES = {"pytorch": {"gpu": ("channels_last", "bf16", "max_autotune")}}


class ConfigError(ValueError):
    pass


def fast_paths(config: str, backend: str, device: str) -> tuple[str, ...] | str:
    """The fast paths `config` means for this backend on this device ('cpu' or 'gpu'), or a
    string: why this cell does not run (no fast path, or not applicable to this backend)."""
    if config == "spec":
        return ()
    if config == "best":
        return BEST[backend][device]
    paths = tuple(config.split("+"))
    unknown = [p for p in paths if p not in FAST_PATHS]
    if unknown:
        raise ConfigError(f"unknown configuration {config!r}: valid are spec, best, or "
                          f"'+'-joined fast paths from {', '.join(FAST_PATHS)}")
    missing = [p for p in paths if backend not in FAST_PATHS[p][1]]
    if missing:
        return f"not applicable: {backend} has no {', '.join(missing)} fast path"
    return paths


def flags(paths: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for p in paths:
        flag = FAST_PATHS[p][0]
        out += [flag] if isinstance(flag, str) else list(flag)
    return out


def label(paths: tuple[str, ...]) -> str:
    return "+".join(paths) if paths else "spec (float32)"
