"""MXNet backend: mx.sym graphs for G and D, mx.mod.Module objects, adam, forward/backward/update.

Every module of this package imports mxnet, so the import happens here, once, in the way it must:
the numpy shim first (backends/compat.py), and mxnet's import-time DeprecationWarnings (aliases
of numpy functions removed in numpy 1.20, deprecated distutils version classes: nothing this
backend uses) kept out of the user's terminal. Its C++ log switches are read when first used,
not at import, so backend.py sets them per run (they follow `--verbose`).
"""
from __future__ import annotations

import importlib
import os
import warnings

from backends.compat import prepare_mxnet

# Full float32 on GPUs, as the PyTorch backend does: under MXNet's default cuDNN math mode,
# cuDNN 8 may use TF32 for float32 convolutions on Ampere and newer GPUs. The switch is read
# when the CUDA libraries initialise, so it is set before the import; an explicit setting wins.
# (No effect on the CPU; not testable on this project's CPU-only machines.)
os.environ.setdefault("NVIDIA_TF32_OVERRIDE", "0")
prepare_mxnet()
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    importlib.import_module("mxnet")
