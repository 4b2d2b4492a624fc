"""`run_all.py --list`: every registered backend, whether it is installed, its version and devices
(each probed in a child process: this one imports no framework), then each backend of every
environment tools.envs built, by its label (jax@newest)."""
from __future__ import annotations

import json
import subprocess
import sys

import backends
from common import interpreters
from common.harness import environment
from common.harness.runfolder import REPO

HEADER = ("backend", "available", "version", "devices / reason")


def probe_row(name: str) -> list[str]:
    """One backend's row: installed or why not, its version (with its components) and devices."""
    reason = backends.unavailable_reason(name)
    if reason:
        return [name, "no", "", reason]
    proc = subprocess.run([sys.executable, "-m", "common.harness.worker", "--probe", name], cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False)
    try:
        info = json.loads(proc.stdout.strip().splitlines()[-1])
        return [name, "yes", info["version"], ", ".join(info["devices"])]
    except (ValueError, IndexError, KeyError):
        return [name, "broken", "", (proc.stderr.strip().splitlines() or ["?"])[-1]]


def aligned(rows: list[list[str]]) -> list[str]:
    """The rows under HEADER, each column as wide as its longest cell (the last left ragged)."""
    rows = [list(HEADER), ["-" * len(h) for h in HEADER], *rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER) - 1)]
    return ["  ".join([*(c.ljust(w) for c, w in zip(r, widths)), r[-1]]).rstrip() for r in rows]


def list_backends() -> int:
    """The table once every backend is probed (a framework's import takes seconds: each probe
    says so on stderr as it starts), so that a long version string keeps the columns aligned."""
    rows = []
    for name in backends.NAMES:
        print(f"probing {name} ...", file=sys.stderr, flush=True)
        rows.append(probe_row(name))
    for env in interpreters.built():  # NAME@ENV: each framework an environment holds
        print(f"probing environment {env} ...", file=sys.stderr, flush=True)
        python = str(interpreters.env_python(env))
        packages = interpreters.describe(python, env)["packages"]
        for reg in backends.REGISTRY.values():
            if reg.framework in packages or f"{reg.framework}-cpu" in packages:
                info = environment.probe_framework(python, reg.name)
                rows.append([f"{reg.name}@{env}", "yes", info["version"], ", ".join(info["devices"])] if info
                            else [f"{reg.name}@{env}", "broken", "", f"python -m tools.envs check {env}"])
    print("\n".join(aligned(rows)), flush=True)
    return 0
