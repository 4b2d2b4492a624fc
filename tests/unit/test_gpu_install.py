"""docs/gpu.md's workstation install: one fresh venv per framework family, constraints.txt only
for Chainer's build, a check of the build at the end of each line; every line's install resolves
with `pip install --dry-run` to a GPU build (where a package registry is reachable); MXNet's
wheel is named with one CUDA version; tools.gpu_builds says CPU BUILD loudly."""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys

import pytest
import tomllib

from tests.support.processes import REPO

DOC = (REPO / "docs" / "gpu.md").read_text()
EXTRAS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
FAMILIES = ("torch", "tensorflow", "jax", "mxnet", "chainer")


def install_lines() -> dict[str, str]:
    """The workstation section's command lines, by the family each one checks."""
    section = DOC.split("## A GPU workstation", 1)[1].split("\n## ", 1)[0]
    block = section.split("```")[1]
    lines = [line for line in block.splitlines() if line.strip()]
    return {line.rsplit("tools.gpu_builds ", 1)[1]: line for line in lines}


def test_the_workstation_section_comes_first_and_names_every_family_once():
    assert DOC.index("## A GPU workstation") < DOC.index("## The one command") < DOC.index("## A GPU node without network")
    lines = install_lines()
    assert sorted(lines) == sorted(FAMILIES)
    assert sorted(e for e in EXTRAS if e.startswith("gpu-")) == sorted(f"gpu-{f}" for f in FAMILIES)
    for family, line in lines.items():
        steps = [s.strip() for s in line.split("&&")]
        assert steps[0] == f"python3 -m venv .venv-gpu-{family}", line  # a fresh venv of its own
        assert steps[1] == f". .venv-gpu-{family}/bin/activate", line
        assert f'".[gpu-{family},dev]"' in steps[2] and steps[2].split()[-4:-1] == ["pip", "install", "-q"], line
        assert steps[3] == f"python -m tools.gpu_builds {family}", line
        # constraints.txt pins torch's CPU build: only Chainer's line has it, for its sdist's build
        assert ("constraints.txt" in line) == (family == "chainer"), line
    assert 'PIP_BUILD_CONSTRAINT="$PWD/constraints.txt"' in lines["chainer"]


def test_mxnet_s_wheel_has_one_cuda_version():
    (wheel,) = [r for r in EXTRAS["gpu-mxnet"] if r.startswith("mxnet-cu")]
    cuda = re.match(r"mxnet-cu(\d+)(\d)==", wheel).groups()
    assert cuda == ("11", "7")  # mxnet-cu117: the newest CUDA of MXNet 1.9.1's GPU wheels
    mentions = set(re.findall(r"CUDA (\d+\.\d+)", DOC))
    assert "11.7" in mentions and not {m for m in mentions if m.startswith("11.") and m != "11.7"}


def test_gpu_builds_says_cpu_build_loudly():
    """This venv's torch, whichever build it is: a CPU build is one loud line and exit 1."""
    import torch
    proc = subprocess.run([sys.executable, "-m", "tools.gpu_builds", "torch"], cwd=REPO, capture_output=True,
                          text=True, timeout=300, check=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    if torch.version.cuda is None:
        assert proc.returncode == 1 and proc.stdout.startswith(f"CPU BUILD: torch {torch.__version__} "), proc.stdout
        assert "docs/gpu.md#a-gpu-workstation" in proc.stdout
    else:
        assert proc.returncode == 0 and proc.stdout.startswith("ok: torch "), proc.stdout


@pytest.mark.parametrize("dists,family,gpu", [
    ({"mxnet": "1.9.1"}, "mxnet", False), ({"mxnet-cu117": "1.9.1"}, "mxnet", True),
    ({"chainer": "7.8.1"}, "chainer", False), ({"chainer": "7.8.1", "cupy-cuda12x": "13.6.0"}, "chainer", True),
    ({"jax": "0.6.2", "jaxlib": "0.6.2"}, "jax", False), ({"jax": "0.6.2", "jax-cuda12-plugin": "0.6.2"}, "jax", True),
    ({"tensorflow-cpu": "2.21.0"}, "tensorflow", False)])
def test_gpu_builds_judges_by_what_is_installed(dists, family, gpu):
    from tools import gpu_builds
    assert gpu_builds.gpu_build(family, dists)[0] is gpu


def _registry_reachable() -> str | None:
    """None, or why pip cannot reach a package registry here."""
    proc = subprocess.run([sys.executable, "-m", "pip", "index", "versions", "mxnet-cu117"],
                          capture_output=True, text=True, timeout=120, check=False)
    return None if proc.returncode == 0 and "1.9.1" in proc.stdout else (
        f"no package registry reachable through pip: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")


# What each extra must resolve to: the GPU build's own distribution.
GPU_DISTRIBUTION = {"torch": r"nvidia-cuda-runtime(-cu\d+)?", "tensorflow": r"nvidia-cuda-runtime-cu12",
                    "jax": r"jax-cuda12-plugin", "mxnet": r"mxnet-cu117", "chainer": r"cupy-cuda12x"}


@pytest.mark.slow  # each resolution downloads metadata: 40-80 s on the 2-core development VM
@pytest.mark.parametrize("family", FAMILIES)
def test_each_install_line_resolves_to_a_gpu_build(family, tmp_path):
    why = _registry_reachable()
    if why:
        pytest.skip(why)
    line = install_lines()[family]
    install = shlex.split(line.split("&&")[2])
    env = dict(os.environ)
    while "=" in install[0]:  # the line's environment assignments, exactly as written
        name, value = install.pop(0).split("=", 1)
        env[name] = value.replace("$PWD", str(REPO))
    assert install[:3] == ["pip", "install", "-q"]
    report = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--report",
                           str(report), *install[2:]], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = {i["metadata"]["name"].lower().replace("_", "-") for i in json.loads(report.read_text())["install"]}
    assert any(re.fullmatch(GPU_DISTRIBUTION[family], n) for n in names), sorted(names)
    assert not {"tensorflow-cpu", "mxnet"} & names, sorted(names)  # no CPU wheel beside it
