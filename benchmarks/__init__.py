"""Throughput methodology and the published tables (see benchmarks/README.md)."""
from __future__ import annotations

import sys


def internal_entry(module: str, purpose: str, command: str) -> int:
    """`python -m` on a module that only serves a command: one line (what the module is, that it
    is internal, the command to run instead) on stdout and exit 0 for -h, on stderr and exit 2
    otherwise, so a new user trying it learns where to go instead of seeing nothing."""
    line = f"python -m {module}: internal, {purpose}; run python -m {command}"
    asked = sys.argv[1:] in (["-h"], ["--help"])
    print(line, file=sys.stdout if asked else sys.stderr)
    return 0 if asked else 2
