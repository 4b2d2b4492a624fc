"""The configurations a benchmark cell can run, as run_all.py flags.

`spec` is what parity is proven on (full float32, no fast path). `best` is each framework's own
fast paths on the device, chosen from the measured ablation in benchmarks/README.md; a framework
without one says why instead of repeating its spec row under another name. A single fast path
(`bf16`, `channels_last`, `compile`, `xla`) or a `+`-joined set of them runs as an ablation cell
for the backends it applies to.
"""
from __future__ import annotations

# fast path -> (run_all.py flag, the backends that have it)
FAST_PATHS = {
    "channels_last": ("--channels-last", ("pytorch",)),
    "bf16": ("--bf16", ("pytorch", "tensorflow", "jax")),  # autocast / Keras mixed_bfloat16 / Flax dtype
    "compile": ("--compile", ("pytorch",)),              # torch.compile (Inductor)
    "xla": ("--xla", ("tensorflow",)),                   # jit_compile
}

# backend -> device -> fast paths in the best-available configuration, or the reason there is none.
BEST = {
    # CPU choices from the ablation on the 2-core AVX-512-BF16 VM, batch 64 (img/s, spec -> path;
    # benchmarks/results/ablations/): PyTorch channels_last+bf16 643 -> 1188 (mnist32), 116 -> 233
    # (dcgan64), torch.compile no faster (626, 129) and adding it to the pair slower; TensorFlow
    # bf16 669 -> 838 and 122 -> 178, XLA slower on this CPU (457, 88) with or without bf16.
    # GPU choices are the frameworks' documented fast paths, not measured: every grid in
    # benchmarks/results/ ran on a CPU, so no GPU row of spec or best has been timed yet.
    "pytorch": {"cpu": ("channels_last", "bf16"), "gpu": ("channels_last", "bf16", "compile")},
    "tensorflow": {"cpu": ("bf16",), "gpu": ("xla", "bf16")},
    "mxnet": {
        "cpu": "none beyond the spec run: oneDNN kernels are already on by default",
        "gpu": "none beyond the spec run: cuDNN autotuning is already on by default "
               "(MXNET_CUDNN_AUTOTUNE_DEFAULT=1)",
    },
    # JAX: Flax compute dtype bf16. CPU, bare loop, mnist32 batch 64, one interleaved run on the
    # shared 2-core VM under load 9-14 (not yet a grid): spec 6.2 s -> bf16 1.7 s per step with
    # the automatic deconv gradient; re-measure in the grid with the custom-vjp deconv
    # (/work/briefs/NOTE-19.md). GPU: the documented fast path, not measured.
    "jax": {"cpu": ("bf16",), "gpu": ("bf16",)},
    "chainer": {
        "cpu": "none: Chainer's CPU fast path (iDeep, ideep4py) has no wheel for this Python",
        "gpu": "none beyond the spec run: the backend already turns cuDNN autotuning on",
    },
}


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
    return [FAST_PATHS[p][0] for p in paths]


def label(paths: tuple[str, ...]) -> str:
    return "+".join(paths) if paths else "spec (float32)"
