"""`run_all.py --list`: every registered backend, whether it is installed, its version and devices
(each probed in a child process: this one imports no framework)."""
from __future__ import annotations

import json
import subprocess
import sys

import backends
from common.harness.runfolder import REPO


def list_backends() -> int:
    from tabulate import tabulate
    rows = []
    for name in backends.NAMES:
        reason = backends.unavailable_reason(name)
        if reason:
            rows.append([name, "no", "", reason])
            continue
        proc = subprocess.run([sys.executable, "-m", "common.harness.worker", "--probe", name], cwd=REPO,
                              capture_output=True, text=True, timeout=300)
        try:
            info = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append([name, "yes", info["version"], ", ".join(info["devices"])])
        except (ValueError, IndexError, KeyError):
            rows.append([name, "broken", "", (proc.stderr.strip().splitlines() or ["?"])[-1]])
    print(tabulate(rows, headers=["backend", "available", "version", "devices / reason"]))
    return 0
