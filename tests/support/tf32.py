"""Reduced-precision float32 math (TF32 on NVIDIA Ampere and newer) switched on per backend, for
tests/backends/test_tf32.py. Each measurement runs in a process of its own:

    python -m tests.support.tf32 BACKEND MODES IN.npz OUT.npz

loads BACKEND on the GPU (dcgan64, the shared initial weights of seed 0) as the spec run sets it
and, for each of MODES (`off`, `on` or `off,on`) in turn, writes G's and D's train-mode outputs
for IN.npz's z and real into OUT.npz (G_off, D_off, ...), switching reduced precision on before
`on`. `off,on` in one process where the switch works at run time (saves a process start on the
GPU); `on` alone where it must be in the environment first (ENV_ON). A process of its own because some switches are read only when the CUDA
libraries start (CUPY_TF32, NVIDIA_TF32_OVERRIDE), and because one backend's switch must not
leak into another's measurement: MXNet's and Chainer's packages set NVIDIA_TF32_OVERRIDE=0 in
os.environ, which every NVIDIA library that starts afterwards in that process obeys.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

# Environment variables that switch reduced precision for a whole process: the measuring
# process starts without them, then gets exactly those its backend's switch names.
PROCESS_SWITCHES = ("NVIDIA_TF32_OVERRIDE", "CUPY_TF32")
# Switched on by the environment, before the framework is imported: CuPy reads CUPY_TF32 (TF32
# in its cuBLAS matmuls: Chainer's im2col convolutions without cuDNN); NVIDIA_TF32_OVERRIDE
# other than 0 keeps backends/chainer/__init__.py from setting 0, so cuDNN's default math
# (TF32 permitted on Ampere+) applies where CuPy has cuDNN.
ENV_ON = {"chainer": {"CUPY_TF32": "1", "NVIDIA_TF32_OVERRIDE": "1"}}


def switch_on(name: str) -> None:
    """Reduced precision on, in this process, after asserting the spec run's setting is off."""
    if name == "pytorch":
        import torch
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    elif name == "jax":
        import jax
        assert jax.config.jax_default_matmul_precision == "highest"
        # JAX's own default (precision DEFAULT: TF32 on Ampere+ GPUs), which the backend
        # overrides; part of jit's cache key, so the jitted forward is traced again.
        jax.config.update("jax_default_matmul_precision", None)
    elif name == "tensorflow":
        import tensorflow as tf
        assert not tf.config.experimental.tensor_float_32_execution_enabled()
        tf.config.experimental.enable_tensor_float_32_execution(True)
    elif name in ENV_ON:
        assert all(os.environ.get(k) == v for k, v in ENV_ON[name].items())
    else:
        raise ValueError(f"no reduced-precision switch known for backend {name!r}")


def measure(name: str, modes: str, inputs: str, output: str) -> None:
    from tests.support.backends import shared_init_backend
    backend = shared_init_backend(name, "dcgan64", device="gpu")
    with np.load(inputs) as data:
        z, real = data["z"], data["real"]
    out = {}
    for mode in modes.split(","):
        if mode == "on":
            switch_on(name)
        out.update({f"G_{mode}": backend.generate(z, train=True), f"D_{mode}": backend.discriminate(real, train=True)})
    np.savez(output, **out)


def runs(name: str) -> list[str]:
    """The MODES of each process that measures `name`: one process where the switch works at
    run time, two where it is the environment's."""
    return ["off", "on"] if name in ENV_ON else ["off,on"]


def run(name: str, modes: str, inputs, output, timeout: float = 300) -> subprocess.CompletedProcess:
    """measure() in a fresh process, its environment free of PROCESS_SWITCHES but for the on
    switch's own when `modes` is 'on'."""
    from tests.support.processes import REPO, with_repo_on_path
    env = {k: v for k, v in os.environ.items() if k not in PROCESS_SWITCHES}
    env.update(ENV_ON.get(name, {}) if modes == "on" else {})
    env.update(PYTHONPATH=with_repo_on_path(), DCGAN_BENCH_TEST_DEVICE="gpu")
    # JAX takes 75% of the GPU's memory at its start unless told not to; the pytest process
    # that starts this one may hold that much already (the JAX parity tests ran in it).
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    return subprocess.run([sys.executable, "-m", "tests.support.tf32", name, modes, str(inputs), str(output)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


INTERNAL = ("python -m tests.support.tf32 NAME MODES INPUTS OUTPUT: internal, one backend's TF32 "
            "measurement for tests/backends/test_tf32.py; run python -m pytest tests/backends/test_tf32.py")

if __name__ == "__main__":
    if sys.argv[1:] in (["-h"], ["--help"]):
        print(INTERNAL)
        sys.exit(0)
    if len(sys.argv) != 5:
        sys.exit(INTERNAL)
    measure(*sys.argv[1:5])
