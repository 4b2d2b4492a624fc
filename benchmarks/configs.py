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
# CPU choices come from the measured ablations in benchmarks/README.md; GPU choices are the
# frameworks' documented fast paths, not yet measured (no GPU row of spec or best has been timed).
WHY_NONE = "benchmarks/README.md#mxnets-and-chainers-none"  # where the reasons are measured
# A grid on another machine shows these reasons as they are: measured once, there, not by it.
MEASURED_ON = "measured on the 2-core AMD EPYC development VM, not by this grid: " + WHY_NONE
BEST = {
    # channels_last+bf16 is 1.8x spec at mnist32 batch 64; torch.compile is no faster, and slower
    # on top of the pair (benchmarks/README.md#pytorchs-best).
    "pytorch": {"cpu": ("channels_last", "bf16"), "gpu": ("channels_last", "bf16", "compile")},
    # Keras' mixed_bfloat16 is 1.25x spec at mnist32 batch 64; XLA is slower on this CPU, and
    # Grappler's oneDNN bf16 rewrite adds nothing on top (benchmarks/README.md#tensorflows-best).
    "tensorflow": {"cpu": ("bf16",), "gpu": ("xla", "bf16")},
    # The bf16 graph (models.bf16_graph: AMP with Deconvolution kept float32, where bf16
    # segfaults) is 2x slower at mnist32 and crashes at dcgan64; oneDNN's fpmath mode picks the
    # same float32 kernels (benchmarks/README.md#mxnets-and-chainers-none).
    "mxnet": {
        "cpu": "none: its bf16 graph (AMP, oneDNN) is 2x slower than spec on mnist32 and "
               "crashes on dcgan64; bf16 Deconvolution segfaults (" + MEASURED_ON + ")",
        "gpu": "none beyond the spec run: cuDNN autotuning is already on by default "
               "(MXNET_CUDNN_AUTOTUNE_DEFAULT=1)",
    },
    # bf16 alone is slower than float32 on XLA:CPU's default runtime, which runs no convolution
    # in oneDNN; the classic runtime (`onednn`) does, with the transposed convolutions as stride-1
    # phases (models.transpose_by_phases): bf16+onednn is 1.38x spec at mnist32 and 1.89x at
    # dcgan64, batch 64 (benchmarks/README.md#jaxs-best). jaxlib 0.10 ignores the runtime flag:
    # there this is bf16 alone.
    "jax": {"cpu": ("bf16", "onednn"),
            "gpu": ("bf16",)},
    # The step's time is in numpy and OpenBLAS (already on both cores); Chainer's own switches
    # change nothing measurable (benchmarks/README.md#mxnets-and-chainers-none).
    "chainer": {
        "cpu": "none: iDeep has no wheel for this Python, float16 is 200x slower in numpy, "
               "type_check off and BLAS threads change nothing measurable (" + MEASURED_ON + ")",
        "gpu": "none beyond the spec run: the backend already turns cuDNN autotuning on",
    },
}


# backend -> device -> the best configuration with its slow-compiling alternative, which the GPU
# check runs as one more cell when its budget leaves time for the compile
# (benchmarks/gpu_check/): torch.compile's max-autotune in place of its default mode.
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


if __name__ == "__main__":
    import benchmarks
    raise SystemExit(benchmarks.internal_entry("benchmarks.configs", "the configurations a grid cell can run (spec, best, fast paths)", "benchmarks.throughput -h"))
