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


def cudnn_removed(cupy_version: str | None) -> bool:
    """CuPy 14 removed cuDNN (its upgrade guide): no CuPy of that line can ever use it."""
    return bool(cupy_version) and int(cupy_version.split(".")[0]) >= 14


def _cupy_version() -> str | None:
    try:
        import cupy  # chainer imports it next anyway (after NVIDIA_TF32_OVERRIDE is set)
    except Exception:  # noqa: BLE001 - absent, or a CUDA it cannot load: chainer then runs on numpy
        return None
    return getattr(cupy, "__version__", None)


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
        # "cuDNN is not enabled. Please reinstall CuPy after you install cudnn", at import, where
        # CuPy has no cuDNN: on CuPy >= 14 (none at all, removed upstream) the advice cannot
        # help, and whether cuDNN is used is recorded (runtime.build_info, each result's device).
        if cudnn_removed(_cupy_version()):
            warnings.filterwarnings("ignore", message="cuDNN is not enabled", category=UserWarning)
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


def prepare_tensorflow() -> None:
    """Import TensorFlow and Keras 3 on it (call before any other import of either)."""
    import importlib
    import os

    # Keras 3 picks its backend once, at import, from KERAS_BACKEND or ~/.keras/keras.json:
    # this backend is Keras on TensorFlow whatever a user's default is.
    os.environ["KERAS_BACKEND"] = "tensorflow"
    level = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL") or 0)
    if level > 0 and "tensorflow" not in sys.modules:
        _import_dropping_stderr_below("keras", level)
    importlib.import_module("keras")  # imports tensorflow (a no-op if done just above)


def _import_dropping_stderr_below(module: str, level: int) -> None:
    """TF 2.19+ logs through absl before TF_CPP_MIN_LOG_LEVEL applies, so its import prints INFO
    lines ("oneDNN custom operations are on", tensorflow#100442) whatever the level: keep the
    C++ stderr of the import and pass on only what the level lets through."""
    import importlib
    import os
    import tempfile

    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            importlib.import_module(module)
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                if absl_severity(line) in (None, *range(level, 4)):
                    sys.stderr.write(line)


def absl_severity(line: str) -> int | None:
    """0-3 for an absl log line ('I0000 00:00:...' is INFO, W, E, F), None for anything else."""
    if line.startswith("WARNING: All log messages before absl::InitializeLog()"):
        return 0  # absl's notice that INFO lines follow: as quiet as they are
    if len(line) > 5 and line[0] in "IWEF" and line[1:5].isdigit():
        return "IWEF".index(line[0])
    return None
