"""Import shims for old frameworks on a newer numpy: the one place they live.

Each backend calls its `prepare_*()` before importing its framework. Every shim is a no-op where
it is not needed, and none changes behaviour beyond restoring what the framework expects.
"""
from __future__ import annotations

import sys
import types

import numpy as np


def prepare_mxnet() -> None:
    """Call before `import mxnet`."""
    # mxnet 1.9.1 uses the alias np.bool, removed in numpy 1.24; it meant the builtin bool.
    if "bool" not in np.__dict__:
        np.bool = bool  # type: ignore[attr-defined]


def prepare_chainer() -> None:
    """Call before `import chainer`."""
    # chainer 7.8.1 imports numpy.distutils.system_info only for a macOS BLAS check; numpy's
    # distutils is gone on Python 3.12 / numpy 2 (and may be absent elsewhere): a stub whose
    # get_info returns {} makes that check report 'no special BLAS', which is all it does.
    try:
        import numpy.distutils.system_info  # noqa: F401
    except Exception:  # noqa: BLE001 - ImportError, or distutils' own errors on new Pythons
        distutils = types.ModuleType("numpy.distutils")
        system_info = types.ModuleType("numpy.distutils.system_info")
        system_info.get_info = lambda *args, **kwargs: {}
        distutils.system_info = system_info
        sys.modules["numpy.distutils"] = distutils
        sys.modules["numpy.distutils.system_info"] = system_info
