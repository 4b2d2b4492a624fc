"""The Python environment each backend label runs in ('jax' here, 'jax@newest' in the built
environment, 'jax@/abs/python' in that interpreter), checked before a run uses it: the
interpreter runs the project's code, the backend's framework imports there (its version and
devices probed, as --list does). A failure is a UsageError naming the fix: nothing is trained."""
from __future__ import annotations

import json
import subprocess
import sys

import backends
from common import interpreters
from common.cli import split_label
from common.harness.runfolder import REPO
from common.options import UsageError

PROBE_TIMEOUT = 300  # seconds: TensorFlow's import on a loaded 2-core machine takes tens


def probe_framework(python: str, name: str) -> dict | None:
    """The backend's framework version and devices, probed in `python` (None if it fails)."""
    from common.harness.child import process_env
    try:
        proc = subprocess.run([python, "-m", "common.harness.worker", "--probe", name], cwd=REPO,
                              capture_output=True, text=True, timeout=PROBE_TIMEOUT, check=False,
                              env=process_env(1))
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def expand_all(labels: list[str]) -> list[str]:
    """['all@ENV'] as every backend, each in ENV where ENV holds its framework (and the numpy it
    needs), else in this interpreter: the newest releases ENV holds, the rest as installed here
    (PyTorch's CPU build, MXNet on numpy 1). Any other list is returned as it is."""
    if len(labels) != 1 or split_label(labels[0])[0] != "all":
        return labels
    env = split_label(labels[0])[1]
    try:
        packages = interpreters.describe(interpreters.resolve(env), env)["packages"]
    except UsageError as exc:
        raise UsageError(f"all{exc}") from None
    numpy_major = packages.get("numpy", "0").split(".")[0]
    out = []
    for reg in backends.REGISTRY.values():
        there = reg.framework in packages or f"{reg.framework}-cpu" in packages
        fits = not (reg.numpy_below and numpy_major.isdigit() and int(numpy_major) >= reg.numpy_below)
        out.append(f"{reg.name}@{env}" if there and fits else reg.name)
    return out


def other_environments(labels: list[str]) -> tuple[list[str], dict[str, dict]]:
    """The labels (all@ENV expanded) and, per NAME@ENV label, its checked environment (its
    interpreter runs the project and the framework imports there); UsageError for the first
    that cannot. Plain names are left to run_all.py's checks."""
    labels = expand_all(labels)
    others = [label for label in labels if split_label(label)[1] is not None]
    return labels, (check(others) if others else {})


def check(labels) -> dict[str, dict]:
    """Each label's environment (interpreters.describe's record, 'framework' added for an
    environment other than this one); UsageError for the first that cannot run its backend."""
    described: dict[str, dict] = {}
    out = {}
    for label in labels:
        name, env = split_label(label)
        try:
            python = interpreters.resolve(env)
        except UsageError as exc:
            raise UsageError(f"{name}{exc}") from None
        if python not in described:
            described[python] = interpreters.describe(python, env)
            warning = interpreters.stale(env) if env else None
            if warning:  # it still runs: the row records what it holds
                print(warning, file=sys.stderr)
        info = dict(described[python])
        if env is not None:
            reg = backends.REGISTRY[name]
            numpy_version = info["packages"].get("numpy", "")
            if reg.numpy_below and numpy_version.split(".")[0].isdigit() \
                    and int(numpy_version.split(".")[0]) >= reg.numpy_below:
                raise UsageError(f"{label}: {reg.framework} needs numpy<{reg.numpy_below}, {env} has "
                                 f"numpy {numpy_version}; run it in an environment with numpy 1 "
                                 f"(for example {name}@mxnet: python -m tools.envs create mxnet)")
            framework = probe_framework(python, name)
            if framework is None:
                fix = (f"python -m tools.envs create {env}" if env in interpreters.defined()
                       else f"{python} -m pip install {reg.framework}")
                raise UsageError(f"{label}: {reg.framework} does not import in {python}; install "
                                 f"it there ({fix}) or pick another environment")
            info["framework"] = framework
        out[label] = info
    return out
