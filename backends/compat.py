"""Import shims for old frameworks on a newer numpy: the one place they live.

Each backend calls its `prepare_*()` before importing its framework. Every shim is a no-op where
it is not needed, and none changes behaviour beyond restoring what the framework expects.
"""
from __future__ import annotations

import sys
import types
import warnings

import numpy as np


def prepare_mxnet() -> None:
    """Call before `import mxnet`."""
    # mxnet 1.9.1 uses the alias np.bool, removed in numpy 1.24; it meant the builtin bool.
    if "bool" not in np.__dict__:
        np.bool = bool  # type: ignore[attr-defined]


def _stub_numpy_distutils() -> None:
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


def prepare_chainer():
    """Import chainer with what 7.8.1 needs on this numpy, and return it. Call it instead of a
    bare first `import chainer`; later imports get the prepared module."""
    with warnings.catch_warnings():
        # Import-time noise in every run's log, nothing to act on: numpy.distutils' deprecation
        # (numpy >= 1.23) and, on numpy 2, that of the setuptools module it imports; and
        # pkg_resources' (chainer's environment check imports it, hence setuptools<81).
        warnings.filterwarnings("ignore", message=r"\s*`numpy.distutils` is deprecated",
                                category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="msvccompiler is deprecated",
                                category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated",
                                category=UserWarning)
        _stub_numpy_distutils()
        # numpy 2 removed np.sctypes, which chainer.functions reads at import (as_strided.py:
        # the 'int' and 'float' lists): numpy 1.x's lists; nothing else in chainer needs it.
        if "sctypes" not in np.__dict__:
            np.sctypes = {  # type: ignore[attr-defined]
                "int": [np.int8, np.int16, np.int32, np.int64],
                "uint": [np.uint8, np.uint16, np.uint32, np.uint64],
                "float": [np.float16, np.float32, np.float64, np.longdouble],
                "complex": [np.complex64, np.complex128, np.clongdouble],
                "others": [bool, object, bytes, str, np.void]}
        import chainer
    from chainer.functions.connection import deconvolution_2d

    # Deconvolution2DFunction.backward passes the arrays, not their shapes, to _set_cover_all
    # when only W needs a gradient (the input does not: G's first layer, whose input is z), and
    # fails with "too many values to unpack". Fixed upstream in chainer PR #8624 ("Fix
    # `_set_cover_all` in deconvolution_2d.py", merged 2022, never released): accept either.
    deconv = deconvolution_2d.Deconvolution2DFunction
    if not getattr(deconv._set_cover_all, "takes_arrays", False):
        set_cover_all = deconv._set_cover_all

        def _set_cover_all(self, x_shape, w_shape):
            set_cover_all(self, getattr(x_shape, "shape", x_shape),
                          getattr(w_shape, "shape", w_shape))

        _set_cover_all.takes_arrays = True
        deconv._set_cover_all = _set_cover_all
    return chainer

