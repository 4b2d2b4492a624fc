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

ROW = "{:<11} {:<10} {:<14} {}"


def list_backends() -> int:
    """One line per backend as soon as it is probed (a framework's import takes seconds)."""
    print(ROW.format("backend", "available", "version", "devices / reason"), flush=True)
    print(ROW.format("-" * 10, "-" * 9, "-" * 13, "-" * 16), flush=True)
    for name in backends.NAMES:
        reason = backends.unavailable_reason(name)
        if reason:
            print(ROW.format(name, "no", "", reason), flush=True)
            continue
        proc = subprocess.run([sys.executable, "-m", "common.harness.worker", "--probe", name], cwd=REPO,
                              capture_output=True, text=True, timeout=300)
        try:
            info = json.loads(proc.stdout.strip().splitlines()[-1])
            row = [name, "yes", info["version"], ", ".join(info["devices"])]
        except (ValueError, IndexError, KeyError):
            row = [name, "broken", "", (proc.stderr.strip().splitlines() or ["?"])[-1]]
        print(ROW.format(*row), flush=True)
    for env in interpreters.built():  # NAME@ENV: each framework an environment holds
        python = str(interpreters.env_python(env))
        packages = interpreters.describe(python, env)["packages"]
        for reg in backends.REGISTRY.values():
            if reg.framework in packages or f"{reg.framework}-cpu" in packages:
                info = environment.probe_framework(python, reg.name)
                row = ([f"{reg.name}@{env}", "yes", info["version"], ", ".join(info["devices"])] if info
                       else [f"{reg.name}@{env}", "broken", "", f"python -m tools.envs check {env}"])
                print(ROW.format(*row), flush=True)
    return 0
