"""MXNet backend: mx.sym graphs for G and D, mx.mod.Module objects, adam, forward/backward/update.

Every module of this package imports mxnet, so the import happens here, once, in the way it must:
the numpy shim first (backends/compat.py), and mxnet's import-time DeprecationWarnings (aliases
of numpy functions removed in numpy 1.20, deprecated distutils version classes: nothing this
backend uses) kept out of the user's terminal. Its C++ log switches are read when first used,
not at import, so backend.py sets them per run (they follow `--verbose`).
"""
from __future__ import annotations

import importlib
import warnings

from backends.compat import prepare_mxnet

prepare_mxnet()
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    importlib.import_module("mxnet")
