"""Registry of backends: names to module paths, without importing any framework.

Frameworks may be missing, and importing one can be slow or crash, so a backend's modules are
imported only when that backend is asked for (`load`), and only in the process that runs it.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass

ENDPOINT, HOSTFILE = "endpoint", "hostfile"


@dataclass(frozen=True)
class Registration:
    name: str
    module: str            # defines `Backend`
    framework: str         # the import name whose presence decides "installed"
    extra: str             # pyproject extra that installs it
    numpy_below: int | None = None   # the numpy major version its framework cannot import on
    # The launcher of an engine that runs one process per replica ("torchrun", "mpiexec"); None
    # where one process drives every device (TensorFlow MirroredStrategy, MXNet's contexts, JAX).
    launcher: str | None = None
    # How run_all.py drives its launch across hosts (--nodes): ENDPOINT, the same command on
    # every host, meeting at --rdzv-endpoint (torchrun's c10d rendezvous, jax.distributed's
    # coordinator, MXNet's dist_sync kvstore, TensorFlow's MultiWorkerMirroredStrategy);
    # HOSTFILE, one command whose launcher starts every host's processes from --hostfile
    # (mpiexec, by ssh) (docs/data-parallel.md).
    multi_host: str = ENDPOINT
    # Whether its rendezvous assigns the hosts' ranks (torchrun), so --node-rank may be left out.
    assigns_ranks: bool = False


REGISTRY: dict[str, Registration] = {r.name: r for r in (
    Registration("pytorch", "backends.pytorch.backend", "torch", "torch", launcher="torchrun",
                 assigns_ranks=True),
    Registration("tensorflow", "backends.tensorflow.backend", "tensorflow", "tensorflow"),
    Registration("mxnet", "backends.mxnet.backend", "mxnet", "mxnet", numpy_below=2),
    Registration("chainer", "backends.chainer.backend", "chainer", "chainer", launcher="mpiexec",
                 multi_host=HOSTFILE),
    Registration("jax", "backends.jax.backend", "jax", "jax"),
)}

NAMES = tuple(REGISTRY)


def install_command(name: str) -> str:
    constraints = '"$PWD/constraints.txt"'  # both variables: README says why
    return f'PIP_CONSTRAINT={constraints} PIP_BUILD_CONSTRAINT={constraints} pip install ".[{REGISTRY[name].extra}]"'


# Tests only: frameworks to treat as not installed (comma-separated import names), so the
# missing-framework path is tested on a machine that has them all.
HIDE_ENV = "DCGAN_BENCH_TEST_HIDE_FRAMEWORKS"


def excluded_reason(name: str) -> str | None:
    """Why this backend cannot run in this environment by design (not a missing install): its
    framework cannot work with the installed numpy. A numpy-2 venv (constraints-numpy2.txt) is
    such an environment for MXNet 1.9.1. Tests skip these backends even under CI=true."""
    reg = REGISTRY[name]
    if reg.numpy_below is None:
        return None
    from importlib.metadata import PackageNotFoundError, version
    try:
        numpy_version = version("numpy")
    except PackageNotFoundError:
        return None
    if int(numpy_version.split(".")[0]) >= reg.numpy_below:
        return (f"{reg.framework} needs numpy<{reg.numpy_below} and this environment has numpy "
                f"{numpy_version}; run it in a venv built from constraints.txt")
    return None


def unavailable_reason(name: str) -> str | None:
    """Why this backend cannot run here (None if it can be tried); imports no framework."""
    reg = REGISTRY[name]
    excluded = excluded_reason(name)
    if excluded:
        return excluded
    hidden = os.environ.get(HIDE_ENV, "").split(",")
    if reg.framework in hidden or importlib.util.find_spec(reg.framework) is None:
        return f"{reg.framework} is not installed; add it with: {install_command(name)}"
    return None


def load(name: str):
    """The backend class: imports its framework (call it in the process that runs the backend)."""
    return importlib.import_module(REGISTRY[name].module).Backend
