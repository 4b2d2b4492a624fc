"""Backends in other Python environments: the NAME@ENV labels (common/cli.py), where ENV's
interpreter is (common/interpreters.py), what a row records of its environment
(common/sysinfo.py), and the version-2 results a reader still reads beside version 1."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from common import cli, interpreters, sysinfo
from common.options import UsageError
from common.results import schema

NAMES = ("pytorch", "tensorflow", "mxnet", "chainer", "jax")
REPO = Path(__file__).resolve().parents[2]
V1 = REPO / "tests" / "fixtures" / "results-v1.json"


@pytest.mark.parametrize("text, expected", [
    ("jax,jax@newest", ["jax", "jax@newest"]),
    ("jax@newest, jax@/usr/bin/python3", ["jax@newest", "jax@/usr/bin/python3"]),
    ("tensorflow@a,tensorflow@b,pytorch", ["tensorflow@a", "tensorflow@b", "pytorch"]),
])
def test_labels_are_accepted_and_kept_in_order(text, expected):
    assert cli.parse_backends(text, NAMES, environments=True) == expected
    assert [cli.split_label(x)[0] for x in expected] == [x.partition("@")[0] for x in expected]


@pytest.mark.parametrize("text, says", [
    ("jax@newest,jax@newest", "named twice"),
    ("jax@", "names no environment"),
    ("jaxx@newest", "unknown backend jaxx@newest"),
    ("all,jax@newest", "stands alone"),
])
def test_bad_labels_are_one_line_naming_the_fix(text, says):
    with pytest.raises(UsageError, match=says) as info:
        cli.parse_backends(text, NAMES, environments=True)
    assert "\n" not in str(info.value)


def test_a_command_without_environments_refuses_a_label():
    # A command that runs backends in its own interpreter (time_to_target, soak, gpu_check):
    # @ENV there would be silently ignored.
    with pytest.raises(UsageError, match="drop @ENV from jax@newest"):
        cli.parse_backends("jax@newest", NAMES)
    assert cli.split_label("jax") == ("jax", None)
    assert cli.split_label("jax@/a/b@c") == ("jax", "/a/b@c")


def test_unknown_env_relative_path_and_non_file_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(interpreters.ENVS_DIR_VARIABLE, str(tmp_path))
    assert interpreters.resolve(None) == sys.executable
    for env, says in (("nope", "unknown environment"), ("bin/python", "absolute path"),
                      (str(tmp_path / "missing"), "no executable file")):
        with pytest.raises(UsageError, match=says):
            interpreters.resolve(env)
    # a half-built environment (no record: its checks never passed) is not used
    (tmp_path / "half" / "bin").mkdir(parents=True)
    os.symlink(sys.executable, tmp_path / "half" / "bin" / "python")
    with pytest.raises(UsageError, match="did not finish"):
        interpreters.resolve("half")
    (tmp_path / "half" / interpreters.RECORD).write_text("{}")
    assert interpreters.resolve("half") == str(tmp_path / "half" / "bin" / "python")
    assert interpreters.built() == ["half"]


def test_a_path_that_is_no_python_is_refused_in_one_line(tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    with pytest.raises(UsageError, match="is no Python that runs this project's code") as info:
        interpreters.describe(str(fake), None)
    assert "\n" not in str(info.value)


def test_environment_record_is_this_interpreters():
    import numpy
    env = sysinfo.environment()
    assert env["interpreter"] == sys.executable
    assert env["packages"]["numpy"] == numpy.__version__
    assert len(env["packages_hash"]) == 64
    # described from outside (python -m common.sysinfo in that interpreter), the same record
    outside = interpreters.describe(sys.executable + "", None)
    assert outside["packages"] == env["packages"]


def test_version_1_rows_get_their_backend_and_the_runs_packages():
    results = schema.load_results(V1)
    assert all(row["backend"] == label for label, row in results["backends"].items())
    assert schema.row_packages(results, "pytorch") == results["provenance"]["packages"]


def test_version_2_rows_keyed_by_label_keep_their_own_packages(tmp_path):
    v2 = json.loads(V1.read_text())
    v2["schema_version"] = 2
    row = dict(v2["backends"]["pytorch"], backend="pytorch",
               environment={"name": "other", "packages": {"numpy": "2.4.6"}})
    v2["backends"]["pytorch@other"] = row
    (tmp_path / "results.json").write_text(json.dumps(v2))
    results = schema.load_results(tmp_path / "results.json")
    assert schema.row_packages(results, "pytorch@other") == {"numpy": "2.4.6"}
    assert results["backends"]["pytorch@other"]["backend"] == "pytorch"


STREAMS = """
import hashlib, json, numpy as np
from common.data import noise
from common import canonical
from common.spec import model_spec
plan = noise.BatchPlan(1000, 64, 3)
h = hashlib.sha256()
for real_index, z in ((plan.indices(i), noise.iteration_noise(3, i, 64, 100)) for i in range(40)):
    h.update(real_index.astype('<i8').tobytes()); h.update(z.astype('<f4').tobytes())
h.update(noise.fixed_noise(3, 64, 100).astype('<f4').tobytes())
for k, v in sorted(canonical.draw_initial_weights(model_spec('mnist32'), 3).items()):
    h.update(k.encode()); h.update(np.ascontiguousarray(v, '<f4').tobytes())
print(json.dumps({"numpy": np.__version__, "sha256": h.hexdigest()}))
"""


def other_numpy_pythons() -> list[str]:
    """Interpreters whose numpy major differs from this one's: $DCGAN_BENCH_SECOND_PYTHON (CI
    sets it) and the environments tools.envs built."""
    import numpy
    found = [os.environ.get("DCGAN_BENCH_SECOND_PYTHON")]
    found += [str(interpreters.env_python(n)) for n in interpreters.built()]
    out = []
    for python in filter(None, found):
        try:
            major = interpreters.describe(python)["packages"].get("numpy", "").split(".")[0]
        except UsageError:
            continue
        if major and major != numpy.__version__.split(".")[0]:
            out.append(python)
    return out


def test_numpy_1_and_2_draw_the_same_data_order_noise_and_initial_weights():
    """Each child draws its data order, z and (without a shared file) the initial weights with
    numpy's Generator: a backend in a numpy-2 environment must see the numpy-1 streams bit for bit."""
    others = other_numpy_pythons()
    if not others:
        pytest.skip("no interpreter with another numpy major (set DCGAN_BENCH_SECOND_PYTHON or "
                    "build one: python -m tools.envs create newest)")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    here = json.loads(subprocess.run([sys.executable, "-c", STREAMS], cwd=REPO, env=env,
                                     capture_output=True, text=True, check=True).stdout)
    there = json.loads(subprocess.run([others[0], "-c", STREAMS], cwd=REPO, env=env,
                                      capture_output=True, text=True, check=True).stdout)
    assert here["numpy"].split(".")[0] != there["numpy"].split(".")[0]
    assert here["sha256"] == there["sha256"], (here, there)


def test_compare_names_the_packages_that_changed_per_label():
    from common.results.compare import environment_changes
    old = json.loads(V1.read_text())  # version 1: the run's provenance packages
    new = json.loads(V1.read_text())
    for row in new["backends"].values():
        row["environment"] = {"packages": dict(old["provenance"]["packages"], numpy="2.4.6")}
    lines = environment_changes(old, new)
    assert lines and all("numpy" in line and "-> 2.4.6" in line for line in lines)
    assert environment_changes(new, new) == []


@pytest.mark.parametrize("label, folder", [
    ("jax", "jax"), ("jax@newest", "jax@newest"),
    ("jax@/opt/py/bin/python", "jax@opt_py_bin_python"),
])
def test_a_labels_files_live_in_one_folder(label, folder):
    assert schema.label_folder(label) == folder and "/" not in schema.label_folder(label)


def test_an_environment_built_from_older_requirements_is_named_stale(tmp_path, monkeypatch):
    import hashlib
    monkeypatch.setenv(interpreters.ENVS_DIR_VARIABLE, str(tmp_path))
    name = interpreters.defined()[0]
    (tmp_path / name).mkdir()
    current = hashlib.sha256((interpreters.REQUIREMENTS_DIR / f"{name}.txt").read_bytes()).hexdigest()
    (tmp_path / name / interpreters.RECORD).write_text(json.dumps({"requirements_sha256": current}))
    assert interpreters.stale(name) is None
    (tmp_path / name / interpreters.RECORD).write_text(json.dumps({"requirements_sha256": "0" * 64}))
    assert f"python -m tools.envs create {name} --force" in interpreters.stale(name)


def test_launchers_come_from_the_rows_environment(tmp_path):
    from common.harness import launch
    python = tmp_path / "env" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("")
    assert launch.worker_command("jax", 1, "c.json", python=str(python))[0] == str(python)
    torchrun = launch.worker_command("pytorch", 2, "c.json", python=str(python))
    assert torchrun[:3] == [str(python), "-m", "torch.distributed.run"]
    (python.parent / "mpiexec").write_text("")  # the environment's own MPI (MPICH's wheel puts it there)
    mpi = launch.worker_command("chainer", 2, "c.json", threads=4, python=str(python))
    assert mpi[0] == str(python.parent / "mpiexec") and str(python) in mpi


def test_all_at_an_environment_runs_each_backend_there_if_it_holds_its_framework(tmp_path, monkeypatch):
    from common.harness import environment
    assert cli.parse_backends("all@newest", NAMES, environments=True) == ["all@newest"]
    with pytest.raises(UsageError):
        cli.parse_backends("all@newest,jax", NAMES, environments=True)
    with pytest.raises(UsageError, match="unknown backend all@newest"):
        cli.parse_backends("all@newest", NAMES)  # a command that runs backends here only
    fake = {"numpy": "2.5.5", "jax": "0.12.1", "tensorflow-cpu": "2.21.0", "mxnet": "1.9.1"}
    monkeypatch.setattr(interpreters, "resolve", lambda env: "/x/bin/python")
    monkeypatch.setattr(interpreters, "describe", lambda python, env=None: {"packages": fake})
    # mxnet is there but cannot run on numpy 2: it stays here, as torch and chainer (not there)
    assert environment.expand_all(["all@e"]) == ["pytorch", "tensorflow@e", "mxnet", "chainer", "jax@e"]
    assert environment.expand_all(["jax", "jax@e"]) == ["jax", "jax@e"]


def test_the_report_names_each_other_environment_once_with_its_labels():
    from common.results.markdown import environment_lines
    env = {"name": "newest", "python": "3.12.1", "packages": {"numpy": "2.5.5", "jax": "0.12.1"}}
    results = {"backends": {"jax": {"environment": {"name": None, "packages": {"numpy": "1.26.4"}}},
                            "jax@newest": {"environment": env}, "chainer@newest": {"environment": env}}}
    assert environment_lines(results) == [
        "- environment newest (jax@newest, chainer@newest): Python 3.12.1, numpy 2.5.5, jax 0.12.1"]


def test_an_environment_file_may_name_several_pythons_the_first_found_is_used(tmp_path, monkeypatch):
    from tools import envs
    for version in ("3.11.7", "3.11.12", "3.13.1"):
        python = tmp_path / "versions" / version / "bin" / "python"
        python.parent.mkdir(parents=True)
        python.write_text("")
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))
    monkeypatch.setattr(envs.shutil, "which", lambda name: None)
    assert envs.find_python("3.12, 3.11").endswith("3.11.12/bin/python")  # 3.12 missing, newest 3.11.*
    assert envs.find_python("3.13,3.11").endswith("3.13.1/bin/python")
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if here not in ("3.11", "3.13"):
        assert envs.find_python(f"3.9, {here}") == sys.executable  # this interpreter is one of them
    with pytest.raises(UsageError, match="no Python 3.8 or 3.7 found.*pyenv install 3.8"):
        envs.find_python("3.8, 3.7")
    assert envs.PYTHON_LINE.search("# python: 3.12, 3.11\n").group(1) == "3.12, 3.11"


def test_a_finished_build_of_the_same_requirements_counts_as_built(tmp_path):
    import hashlib

    from tools import envs
    text = "numpy\n"
    assert envs.already_built(tmp_path, text) is None  # no record: never finished
    (tmp_path / interpreters.RECORD).write_text(json.dumps({
        "requirements_sha256": hashlib.sha256(text.encode()).hexdigest(), "python": "3.12.4",
        "size_bytes": 3 * 2**20}))
    assert envs.already_built(tmp_path, text) == "Python 3.12.4, 3 MiB"
    assert envs.already_built(tmp_path, text + "scipy\n") is None


def test_run_all_accepts_all_at_an_environment_and_checks_every_engine_it_names():
    import run_all
    args = run_all.parse_args(["--backend", f"all@{sys.executable}", "--iters", "2"])
    assert args.backends == [f"all@{sys.executable}"]  # expanded by the harness, knowing ENV
    with pytest.raises(SystemExit) as stop:  # --nodes: tensorflow (one of all) runs on one host
        run_all.parse_args(["--backend", f"all@{sys.executable}", "--nodes", "2", "--node-rank", "0",
                            "--rdzv-endpoint", "127.0.0.1:29500"])
    assert stop.value.code == 2
