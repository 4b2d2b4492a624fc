"""Say loudly whether this venv's frameworks are GPU builds: a CPU build is what pip keeps or
picks without a word (torch 2.13.0+cpu from an earlier install, JAX without its CUDA plugin).

    python -m tools.gpu_builds torch     # after pip install ".[gpu-torch,dev]" (docs/gpu.md)
    python -m tools.gpu_builds           # every framework installed here

Each framework is judged by what is installed, not by a GPU being present, so it also runs on a
machine whose driver is not set up yet: torch by torch.version.cuda, TensorFlow by its build info
(tensorflow-cpu is a CPU build), JAX by its CUDA plugin's distribution, MXNet by its mxnet-cu*
distribution, Chainer by CuPy's. Exit 1 if any named (or installed) framework is a CPU build,
2 for a name it does not know; whether the GPU is then seen: python run_all.py --list.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from importlib import metadata

FAMILIES = ("torch", "tensorflow", "mxnet", "chainer", "jax")
FIX = "install it into a fresh venv with the {family} line of docs/gpu.md#a-gpu-workstation"


def distributions() -> dict[str, str]:
    """Installed distributions, by lower-case name: their versions."""
    return {(d.metadata["Name"] or "").lower().replace("_", "-"): d.version for d in metadata.distributions()}


def installed(family: str, dists: dict[str, str]) -> str | None:
    """The family's framework version, or None when it is not installed."""
    names = {"torch": ("torch",), "tensorflow": ("tensorflow", "tensorflow-cpu"),
             "mxnet": tuple(n for n in dists if n == "mxnet" or n.startswith("mxnet-cu")),
             "chainer": ("chainer",), "jax": ("jax",)}[family]
    return next((f"{n} {dists[n]}" for n in names if n in dists), None)


def gpu_build(family: str, dists: dict[str, str]) -> tuple[bool, str]:
    """(is a GPU build, the evidence in a few words)."""
    if family == "torch":
        torch = importlib.import_module("torch")
        cuda = torch.version.cuda
        return cuda is not None, f"torch.version.cuda is {cuda!r}"
    if family == "tensorflow":
        if "tensorflow-cpu" in dists:
            return False, "tensorflow-cpu is installed"
        tf = importlib.import_module("tensorflow")
        cuda = tf.sysconfig.get_build_info().get("is_cuda_build", False)
        return bool(cuda), f"is_cuda_build is {cuda}"
    if family == "mxnet":
        gpu = [n for n in dists if n.startswith("mxnet-cu")]
        return bool(gpu), f"{gpu[0]} is installed" if gpu else "mxnet (the CPU wheel) is installed"
    if family == "chainer":
        cupy = [n for n in dists if n == "cupy" or n.startswith("cupy-cuda")]
        return bool(cupy), f"{cupy[0]} {dists[cupy[0]]} is installed" if cupy else "no CuPy is installed"
    plugins = [n for n in dists if n.startswith("jax-cuda") and n.endswith("-plugin")]
    return bool(plugins), f"{plugins[0]} is installed" if plugins else "no jax-cuda*-plugin is installed"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    paragraphs = __doc__.split("\n\n")
    p = argparse.ArgumentParser(prog="python -m tools.gpu_builds", description=paragraphs[0],
                                epilog="\n\n".join(paragraphs[1:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("family", nargs="*", metavar="FAMILY",
                   help=f"frameworks to judge, from {', '.join(FAMILIES)} (default: every one installed)")
    args = p.parse_args(argv)
    unknown = [f for f in args.family if f not in FAMILIES]
    if unknown:
        p.error(f"unknown framework {', '.join(unknown)}; valid: {', '.join(FAMILIES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    dists = distributions()
    families = args.family or [f for f in FAMILIES if installed(f, dists)]
    if not families:
        print("tools.gpu_builds: no framework is installed in this venv; see docs/gpu.md", file=sys.stderr)
        return 1
    cpu = 0
    for family in families:
        version = installed(family, dists)
        if version is None:
            print(f"NOT INSTALLED: {family}: {FIX.format(family=family)}")
            cpu += 1
            continue
        gpu, evidence = gpu_build(family, dists)
        if gpu:
            print(f"ok: {version} is a GPU build ({evidence})")
        else:
            cpu += 1
            print(f"CPU BUILD: {version} cannot use a GPU ({evidence}); {FIX.format(family=family)}")
    return 1 if cpu else 0


if __name__ == "__main__":
    sys.exit(main())
