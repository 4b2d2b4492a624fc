"""Subprocess helpers: run_all.py as a user runs it, offline; Python with the frameworks blocked."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FRAMEWORKS = ("torch", "tensorflow", "keras", "mxnet", "chainer", "cupy", "jax", "flax", "optax")


def with_repo_on_path() -> str:
    """PYTHONPATH for a child: the checkout first, then what the caller had (on a GPU node the
    wheel folder's target, docs/gpu.md), never replacing it."""
    return os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)


def run_cli(*args, env=None, timeout=300):
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, str(REPO / "run_all.py"), *args], cwd=REPO,
                          env=full_env, capture_output=True, text=True, timeout=timeout)


def offline(cache_parent: Path) -> dict:
    """A private cache and MNIST mirrors on a closed loopback port: 'no network', quickly."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return {"DCGAN_BENCH_CACHE": str(cache_parent / "cache"),
            "DCGAN_BENCH_MNIST_MIRRORS": f"http://127.0.0.1:{port}/"}


def one_line_error(proc):
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def prelude(block: bool) -> str:
    """Prepended to every subprocess script: block the frameworks (if asked), and define
    loaded_frameworks(): their real modules in sys.modules (a blocked entry is None)."""
    return textwrap.dedent(f"""
        import json, sys
        FRAMEWORKS = {FRAMEWORKS!r}
        if {block!r}:
            for _name in FRAMEWORKS:
                sys.modules[_name] = None
        def loaded_frameworks():
            return sorted(m for m, mod in sys.modules.items()
                          if mod is not None and m.split(".")[0] in FRAMEWORKS)
    """)


def run_python(script: str, block: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", prelude(block) + textwrap.dedent(script)],
                          cwd=REPO, capture_output=True, text=True, timeout=timeout)


def last_json(proc: subprocess.CompletedProcess):
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])
