"""The Python environments the project builds: tools/environments/<name>.txt says what one holds (its
'# python: X.Y' line: the Python it needs, or 'X.Y, X.Y', the first found), and one command
builds it into an ignored folder (.envs/<name>, or $DCGAN_BENCH_ENVS_DIR/<name>), where `run_all.py --backend jax@<name>` finds it.

    python -m tools.envs create newest                  # from PyPI (uv when installed, else venv + pip)
    python -m tools.envs create newest --wheels DIR     # offline, from a folder of wheels
    python -m tools.envs list                           # defined and built, with their versions
    python -m tools.envs check newest                   # the project's code runs, each framework imports

An environment counts as built once its record (.envs/<name>/dcgan-bench-env.json: the
requirement file's hash, install seconds, size, packages) is written, after the checks passed.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import backends
from common import atomic, interpreters
from common.harness import environment
from common.options import EXIT_USAGE, UsageError

RECORD = interpreters.RECORD
# Chainer 7.8.1 has no wheel: pip builds its sdist, whose setup imports pkg_resources, removed
# in setuptools 81; the cap reaches pip's isolated build through PIP_BUILD_CONSTRAINT (constraints.txt says why).
BUILD_CONSTRAINT = "setuptools<81\n"
# '# python: 3.12' or a preference list, '# python: 3.12, 3.11': the first one found is used.
PYTHON_LINE = re.compile(r"^#\s*python:\s*(\d+\.\d+(?:\s*,\s*\d+\.\d+)*)\s*$", re.MULTILINE)


def requirement_file(name: str, given: str | None) -> Path:
    path = Path(given) if given else interpreters.REQUIREMENTS_DIR / f"{name}.txt"
    if not path.is_file():
        raise UsageError(f"no requirement file {path}; environments defined: "
                         f"{', '.join(interpreters.defined()) or 'none'} (or pass --file PATH)")
    return path


def find_python(versions: str | None) -> str:
    """An interpreter of the first of `versions` ('3.12' or '3.12, 3.11') found: pyenv's newest
    X.Y.*, else pythonX.Y on PATH, else this one if it is X.Y; None: this one."""
    if versions is None:
        return sys.executable
    wanted = [v.strip() for v in versions.split(",")]
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    for version in wanted:
        found = sorted(glob.glob(str(root / "versions" / f"{version}.*" / "bin" / "python")),
                       key=lambda p: [int(x) for x in re.findall(r"\d+", Path(p).parts[-3])])
        if found:
            return found[-1]
        on_path = shutil.which(f"python{version}")
        if on_path:
            return on_path
        if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
            return sys.executable
    raise UsageError(f"no Python {' or '.join(wanted)} found (pyenv or python{wanted[0]} on PATH); "
                     f"install it (pyenv install {wanted[0]}) or pass --python PATH")


def install_commands(python: str, target: Path, requirements: Path, wheels: str | None,
                     constraint: Path) -> list[list[str]]:
    """The commands that build the environment: uv when it is installed, else venv + pip."""
    offline = ["--no-index", "--find-links", wheels] if wheels else []
    uv = shutil.which("uv")
    if uv:
        return [[uv, "venv", "--python", python, str(target)],
                [uv, "pip", "install", "--python", str(target / "bin" / "python"),
                 "--build-constraint", str(constraint), *offline, "-r", str(requirements)]]
    return [[python, "-m", "venv", str(target)],
            [str(target / "bin" / "python"), "-m", "pip", "install", "--quiet",
             "--disable-pip-version-check", *offline, "-r", str(requirements)]]


def already_built(target: Path, requirements_text: str) -> str | None:
    """'Python X, N MiB' when `target` holds a finished build of these requirements, else None."""
    try:
        record = json.loads((target / RECORD).read_text())
    except (OSError, ValueError):
        return None
    if record.get("requirements_sha256") != hashlib.sha256(requirements_text.encode()).hexdigest():
        return None
    return f"Python {record.get('python')}, {record.get('size_bytes', 0) / 2**20:.0f} MiB"


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def check(name: str, python: str) -> list[str]:
    """One line per backend whose framework is installed there: its version, or why it fails.
    UsageError if the project's code does not run there."""
    info = interpreters.describe(python, name)
    lines = [f"{name}: Python {info['python']}, numpy {info['packages'].get('numpy', 'missing')}"]
    for reg in backends.REGISTRY.values():
        dist = {"tensorflow": ("tensorflow", "tensorflow-cpu")}.get(reg.framework, (reg.framework,))
        if not any(d in info["packages"] for d in dist):
            continue
        probed = environment.probe_framework(python, reg.name)
        if probed is None:
            raise UsageError(f"{name}: {reg.framework} is installed but does not import (run "
                             f"{python} -m common.harness.worker --probe {reg.name} to see why)")
        lines.append(f"  {reg.name}@{name}: {reg.framework} {probed['version']} imports "
                     f"({', '.join(probed['devices'])})")
    return lines


def create(args) -> int:
    requirements = requirement_file(args.name, args.file)
    text = requirements.read_text()
    wanted = PYTHON_LINE.search(text)
    python = args.python or find_python(wanted.group(1) if wanted else None)
    target = interpreters.envs_dir() / args.name
    if target.exists():
        built = already_built(target, text)
        if built and not args.force:  # the same command twice builds once (the README's)
            print(f"{args.name}: already built from {requirements} ({built}); --force rebuilds it")
            return 0
        if built is None and (target / RECORD).exists() and not args.force:
            raise UsageError(f"{target} was built from other requirements; pass --force to rebuild it")
        shutil.rmtree(target)  # --force, or a build that never finished (no record)
    target.parent.mkdir(parents=True, exist_ok=True)
    constraint = target.parent / f".{args.name}.build-constraints.txt"
    constraint.write_text(BUILD_CONSTRAINT)
    env = dict(os.environ, PIP_CONSTRAINT=str(constraint), PIP_BUILD_CONSTRAINT=str(constraint))
    t0 = time.perf_counter()
    for command in install_commands(python, target, requirements, args.wheels, constraint):
        print("+ " + " ".join(command), file=sys.stderr, flush=True)
        if subprocess.run(command, env=env, check=False).returncode != 0:
            shutil.rmtree(target, ignore_errors=True)  # a failed build leaves no half environment
            print(f"tools.envs: building {args.name} failed (above); fix {requirements} or the "
                  f"wheel folder and run again with --force", file=sys.stderr)
            return 1
    seconds = time.perf_counter() - t0
    built = str(target / "bin" / "python")
    lines = check(args.name, built)
    info = interpreters.describe(built, args.name)
    record = {"name": args.name, "requirements": str(requirements),
              "requirements_sha256": hashlib.sha256(text.encode()).hexdigest(),
              "installer": "uv" if shutil.which("uv") else "venv+pip",
              "offline_from": args.wheels, "install_seconds": round(seconds, 1),
              "size_bytes": folder_bytes(target), **info}
    atomic.write_json(target / RECORD, record)
    print("\n".join(lines))
    print(f"{args.name}: built in {seconds:.0f} s, {record['size_bytes'] / 2**20:.0f} MiB at {target}")
    return 0


def list_envs(args) -> int:
    print(f"{'environment':<14} {'built':<6} {'python':<8} {'MiB':>6}  packages")
    for name in sorted(set(interpreters.defined()) | set(interpreters.built())):
        path = interpreters.envs_dir() / name / RECORD
        record = json.loads(path.read_text()) if path.exists() else None
        if record is None:
            print(f"{name:<14} {'no':<6} {'':<8} {'':>6}  python -m tools.envs create {name}")
            continue
        packages = ", ".join(f"{k} {v}" for k, v in record["packages"].items() if k != "setuptools")
        print(f"{name:<14} {'yes':<6} {record['python']:<8} {record['size_bytes'] / 2**20:>6.0f}  {packages}")
    return 0


def check_env(args) -> int:
    print("\n".join(check(args.name, interpreters.resolve(args.name))))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.envs", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("create", help="build environment NAME from tools/environments/NAME.txt")
    c.add_argument("name", metavar="NAME")
    c.add_argument("--file", help="the requirement file (default tools/environments/NAME.txt)")
    c.add_argument("--python", help="the interpreter to build from (default: the first found of the "
                   "file's '# python: X.Y, ...')")
    c.add_argument("--wheels", metavar="DIR", help="install offline from this folder of wheels")
    c.add_argument("--force", action="store_true", help="rebuild an environment that exists (without "
                   "it, one built from the same requirements is kept and the command succeeds)")
    sub.add_parser("list", help="the environments defined and built")
    k = sub.add_parser("check", help="check a built environment: the project's code, each framework")
    k.add_argument("name", metavar="NAME")
    args = p.parse_args(argv)
    try:
        return {"create": create, "list": list_envs, "check": check_env}[args.command](args)
    except UsageError as exc:
        print(f"tools.envs: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
