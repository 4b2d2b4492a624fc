"""A backend in a second Python interpreter, end to end: each row records its own interpreter's
numpy; bad environments stop the run before anything trains; the environment builder
(tools.envs) builds offline from a wheel built here.

CI's numpy-2 stage sets DCGAN_BENCH_SECOND_PYTHON to the first venv's interpreter (.ci/run);
elsewhere an environment tools.envs built stands in."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from common import interpreters
from common.options import UsageError
from tests.support.processes import REPO, one_line_error, run_cli

# Light imports first: the test needs one framework present in both interpreters.
CANDIDATES = (("chainer", "chainer"), ("pytorch", "torch"), ("jax", "jax"), ("tensorflow", "tensorflow"))


def second_python() -> tuple[str, str] | None:
    """(interpreter, backend) of another interpreter that holds one of this one's frameworks."""
    import importlib.util
    found = [os.environ.get("DCGAN_BENCH_SECOND_PYTHON")]
    found += [str(interpreters.env_python(n)) for n in interpreters.built()]
    for python in filter(None, found):
        # as given, not resolved: every venv's python links to the same base interpreter
        if Path(python).absolute() == Path(sys.executable).absolute():
            continue
        try:
            packages = interpreters.describe(python)["packages"]
        except UsageError:
            continue
        for name, module in CANDIDATES:
            there = module in packages or f"{module}-cpu" in packages
            if there and importlib.util.find_spec(module) is not None:
                return python, name
    return None


def numpy_of(python: str) -> str:
    return subprocess.run([python, "-c", "import numpy; print(numpy.__version__)"], check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.mark.slow
def test_a_backend_runs_in_a_second_interpreter_and_each_row_records_its_own_numpy(tmp_path):
    found = second_python()
    if found is None:
        if os.environ.get("DCGAN_BENCH_SECOND_PYTHON"):  # CI's numpy-2 stage sets it (.ci/run)
            pytest.fail(f"DCGAN_BENCH_SECOND_PYTHON={os.environ['DCGAN_BENCH_SECOND_PYTHON']} "
                        "holds none of this interpreter's frameworks, or is no Python")
        pytest.skip("no second interpreter (set DCGAN_BENCH_SECOND_PYTHON or python -m tools.envs create NAME)")
    python, name = found
    label = f"{name}@{python}"
    proc = run_cli("--backend", f"{name},{label}", "--iters", "3", "--dataset", "synthetic",
                   "--quiet", "--no-figures", "--out", str(tmp_path / "run"), timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert list(results["backends"]) == [name, label]
    here, there = results["backends"][name], results["backends"][label]
    assert here["backend"] == there["backend"] == name
    assert here["status"] == there["status"] == "ok"
    assert here["environment"]["interpreter"] == sys.executable
    assert there["environment"]["interpreter"] == python
    assert here["environment"]["packages"]["numpy"] == numpy_of(sys.executable)
    assert there["environment"]["packages"]["numpy"] == numpy_of(python)
    # the second run's files live under its label, and the losses table keeps the two apart
    from common.results.schema import label_folder  # an interpreter path's / made one folder name
    assert (tmp_path / "run" / "backends" / label_folder(label) / "losses.csv").exists()
    import pandas as pd
    assert sorted(pd.read_csv(tmp_path / "run" / "losses.csv")["backend"].unique()) == sorted([name, label])


def test_bad_environments_exit_2_in_one_line_and_train_nothing(tmp_path):
    bare = tmp_path / "bare"  # a Python without numpy or any framework
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    for env, says in (("nope", "unknown environment"), ("/no/such/python", "no executable file"),
                      ("/bin/sh", "is no Python that runs this project's code"),
                      (str(bare / "bin" / "python"), "does not import")):
        out = tmp_path / "run"
        proc = run_cli("--backend", f"jax@{env}", "--iters", "2", "--dataset", "synthetic",
                       "--out", str(out), env={interpreters.ENVS_DIR_VARIABLE: str(tmp_path / "envs")})
        one_line_error(proc)
        assert says in proc.stderr and not out.exists(), proc.stderr


def make_wheel(folder: Path, name: str = "dcgan_bench_tinypkg", version: str = "1.0") -> Path:
    """A pure-Python wheel written here, byte by byte (no build backend, no network)."""
    dist = f"{name}-{version}"
    files = {f"{name}/__init__.py": "VALUE = 42\n",
             f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = [f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b'=').decode()},{len(text)}"
              for path, text in files.items()] + [f"{dist}.dist-info/RECORD,,"]
    files[f"{dist}.dist-info/RECORD"] = "\n".join(record) + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for path, text in files.items():
            z.writestr(path, text)
    return wheel


@pytest.mark.slow
def test_the_environment_builder_builds_offline_from_a_wheel_folder(tmp_path):
    make_wheel(tmp_path / "wheels")
    requirements = tmp_path / "tiny.txt"
    requirements.write_text("dcgan_bench_tinypkg==1.0\n")
    env = dict(os.environ, **{interpreters.ENVS_DIR_VARIABLE: str(tmp_path / "envs")},
               PIP_INDEX_URL="http://127.0.0.1:9/", PIP_EXTRA_INDEX_URL="", PATH=os.environ["PATH"])
    command = [sys.executable, "-m", "tools.envs", "create", "tiny", "--file", str(requirements),
               "--wheels", str(tmp_path / "wheels"), "--python", sys.executable]
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    python = tmp_path / "envs" / "tiny" / "bin" / "python"
    got = subprocess.run([str(python), "-c", "import dcgan_bench_tinypkg as t; print(t.VALUE)"],
                         capture_output=True, text=True, check=False)
    assert got.stdout.strip() == "42", got.stderr
    record = json.loads((tmp_path / "envs" / "tiny" / interpreters.RECORD).read_text())
    assert record["offline_from"] == str(tmp_path / "wheels") and record["size_bytes"] > 0
    assert record["requirements_sha256"] == hashlib.sha256(requirements.read_bytes()).hexdigest()
    # built twice: the second command keeps it and succeeds (the README runs it on every machine)
    again = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    assert again.returncode == 0 and "already built" in again.stdout and python.exists()
    assert json.loads((tmp_path / "envs" / "tiny" / interpreters.RECORD).read_text()) == record
    # the same name from other requirements: refused without --force, the environment kept
    other = tmp_path / "other.txt"
    other.write_text("dcgan_bench_tinypkg==1.0\n# changed\n")
    changed = subprocess.run([*command[:6], str(other), *command[7:]], cwd=REPO, env=env,
                             capture_output=True, text=True, check=False)
    one_line_error(changed)
    assert "--force" in changed.stderr and python.exists()
    # a wheel the folder lacks: pip cannot find it offline, exit non-zero, nothing recorded as built
    requirements.write_text("dcgan_bench_tinypkg==2.0\n")
    missing = subprocess.run([*command[:4], "tiny2", *command[5:]], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=600, check=False)
    assert missing.returncode != 0
    assert not (tmp_path / "envs" / "tiny2" / interpreters.RECORD).exists()
