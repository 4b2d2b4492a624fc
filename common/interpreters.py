"""Where a backend's Python is: the current interpreter, an environment tools.envs built (by its
name, from tools/environments/<name>.txt into ENVS_DIR/<name>), or any Python given by its absolute path; and
how such an interpreter describes itself (python -m common.sysinfo run inside it)."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from common.options import UsageError

REPO = Path(__file__).resolve().parent.parent
REQUIREMENTS_DIR = REPO / "tools" / "environments"  # tools/environments/<name>.txt: what an environment holds
# Built environments: an ignored folder of the checkout (.gitignore), or where the variable says.
ENVS_DIR_VARIABLE = "DCGAN_BENCH_ENVS_DIR"
# Written into a built environment by tools.envs once its checks passed: only then is it built.
RECORD = "dcgan-bench-env.json"
DESCRIBE_TIMEOUT = 120  # seconds: a cold interpreter on a loaded machine imports only the stdlib


def envs_dir() -> Path:
    return Path(os.environ.get(ENVS_DIR_VARIABLE) or REPO / ".envs")


def env_python(name: str) -> Path:
    """The interpreter of built environment `name` (it may not exist)."""
    return envs_dir() / name / "bin" / "python"


def defined() -> list[str]:
    """The environments the project defines (tools/environments/<name>.txt)."""
    return sorted(p.stem for p in REQUIREMENTS_DIR.glob("*.txt"))


def built() -> list[str]:
    """The environments built under envs_dir()."""
    root = envs_dir()
    return sorted(p.name for p in root.iterdir() if (p / RECORD).exists()) if root.is_dir() else []


def resolve(env: str | None) -> str:
    """The interpreter ENV names (None: this one). UsageError, one line naming the fix, for a
    relative path, a path that is no file, or a name that is not built."""
    if env is None:
        return sys.executable
    if os.sep in env or env.startswith("."):
        path = Path(env)
        if not path.is_absolute():
            raise UsageError(f"@{env}: give an environment's name or a Python's absolute path "
                             f"(for example @{Path(env).resolve()})")
        if not path.is_file() or not os.access(path, os.X_OK):
            raise UsageError(f"@{env}: no executable file there; give the absolute path of a Python "
                             "interpreter (for example /usr/bin/python3)")
        return str(path)
    python = env_python(env)
    if python.exists() and (python.parent.parent / RECORD).exists():
        return str(python)
    if python.exists():
        raise UsageError(f"@{env}: its build did not finish (no {RECORD}); rebuild it: "
                         f"python -m tools.envs create {env} --force")
    have = ", ".join(built()) or "none"
    if env in defined():
        raise UsageError(f"@{env}: environment not built (built: {have}); build it: "
                         f"python -m tools.envs create {env}")
    raise UsageError(f"@{env}: unknown environment (defined in tools/environments/: {', '.join(defined()) or 'none'}; "
                     f"built: {have}); pass one of them or a Python's absolute path")


def describe(python: str, env: str | None = None) -> dict:
    """The environment of `python` (common.sysinfo.environment, run there), with its name.
    UsageError if it is no Python that runs the project's code."""
    from common import sysinfo
    if python == sys.executable:
        info = sysinfo.environment()
    else:
        path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        try:
            proc = subprocess.run([python, "-m", "common.sysinfo"], cwd=REPO, capture_output=True, check=False,
                                  text=True, timeout=DESCRIBE_TIMEOUT, env=dict(os.environ, PYTHONPATH=path))
            info = json.loads(proc.stdout.strip().splitlines()[-1])
            if not isinstance(info, dict) or "packages" not in info:
                raise ValueError(info)
        except (OSError, subprocess.SubprocessError, ValueError, IndexError):
            raise UsageError(f"@{env or python}: {python} is no Python that runs this project's code "
                             "(python -m common.sysinfo failed there); give a Python 3.10+ "
                             "interpreter or rebuild the environment: python -m tools.envs create NAME"
                             ) from None
    if info["interpreter"] != python:  # a wrapper or a link: run what was given, record both
        info["executable"], info["interpreter"] = info["interpreter"], python
    return {"name": env, **info}


def stale(env: str) -> str | None:
    """A warning if built environment `env` was built from other requirements than
    tools/environments/<env>.txt holds now (None if it matches, or is not one the project defines)."""
    record, file = envs_dir() / env / RECORD, REQUIREMENTS_DIR / f"{env}.txt"
    try:
        built_from = json.loads(record.read_text()).get("requirements_sha256")
        now = hashlib.sha256(file.read_bytes()).hexdigest()
    except (OSError, ValueError, AttributeError):
        return None
    return None if built_from == now else (f"warning: {env} was built from an older {file.name}; "
                                           f"rebuild it: python -m tools.envs create {env} --force")
