"""Tests for the backend registry and the framework-free promise of common/ and run_all.py.

The harness must start, list backends and explain what is missing on a machine with no framework
installed. The subprocess tests simulate that machine by putting None into sys.modules for every
framework (any import of one then raises ImportError), and check afterwards that none was loaded.
"""
from __future__ import annotations

from pathlib import Path

import pytest

import backends
from tests.support.processes import last_json, run_python

REPO = Path(__file__).resolve().parents[2]
COMMON_MODULES = sorted(".".join(p.relative_to(REPO).with_suffix("").parts)
                        for p in (REPO / "common").rglob("*.py") if p.stem != "__init__")

def test_common_modules_are_found():
    # The glob below is what the subprocess imports: make sure it is not silently empty.
    assert {"common.spec", "common.canonical", "common.data.noise", "common.results.markdown"} <= set(COMMON_MODULES)


# ----- in-process registry checks -----
def test_names_are_the_five_backends():
    assert backends.NAMES == ("pytorch", "tensorflow", "mxnet", "chainer", "jax")
    assert set(backends.REGISTRY) == set(backends.NAMES)
    for name, reg in backends.REGISTRY.items():
        assert reg.name == name
        assert reg.module == f"backends.{name}.backend"


def test_launch_facts_are_the_registrys():
    """Which engines run one process per replica, and which run_all.py launches across hosts:
    the harness and run_all.py read them here."""
    launchers = {name: reg.launcher for name, reg in backends.REGISTRY.items() if reg.launcher}
    assert launchers == {"pytorch": "torchrun", "chainer": "mpiexec"}
    assert {name: reg.multi_host for name, reg in backends.REGISTRY.items()} == {
        "pytorch": backends.ENDPOINT, "tensorflow": backends.ENDPOINT, "mxnet": backends.ENDPOINT,
        "chainer": backends.HOSTFILE, "jax": backends.ENDPOINT}
    assert [name for name, reg in backends.REGISTRY.items() if reg.assigns_ranks] == ["pytorch"]


@pytest.mark.parametrize("name", backends.NAMES)
def test_install_command_contains_the_extra(name):
    cmd = backends.install_command(name)
    assert "pip install" in cmd
    assert f".[{backends.REGISTRY[name].extra}]" in cmd


def test_missing_framework_reason_gives_the_install_command(monkeypatch):
    reg = backends.Registration("fakebackend", "backends.fakebackend.backend",
                                "no_such_framework_dcgan_bench", "fakeextra")
    monkeypatch.setitem(backends.REGISTRY, "fakebackend", reg)
    reason = backends.unavailable_reason("fakebackend")
    assert reason is not None
    assert "no_such_framework_dcgan_bench" in reason
    assert "pip install" in reason and ".[fakeextra]" in reason


def test_installed_framework_has_no_reason(monkeypatch):
    # numpy stands in for an installed framework: find_spec succeeds, nothing is imported anew.
    monkeypatch.setitem(backends.REGISTRY, "fakebackend",
                        backends.Registration("fakebackend", "x.backend", "numpy", "numpy"))
    assert backends.unavailable_reason("fakebackend") is None


def test_unknown_backend_name_is_a_key_error():
    with pytest.raises(KeyError):
        backends.unavailable_reason("theano")


# ----- subprocess: no framework installed -----
def test_harness_modules_import_with_frameworks_blocked():
    proc = run_python(f"""
        import importlib
        for m in {COMMON_MODULES + ["backends", "backends.base"]!r}:
            importlib.import_module(m)
        import backends
        reasons = {{n: backends.unavailable_reason(n) for n in backends.NAMES}}
        print(json.dumps({{"reasons": reasons, "loaded": loaded_frameworks()}}))
    """)
    out = last_json(proc)
    assert out["loaded"] == []
    assert set(out["reasons"]) == set(backends.NAMES)
    # With torch blocked, the one implemented backend explains how to install it.
    assert "torch" in out["reasons"]["pytorch"] and "pip install" in out["reasons"]["pytorch"]
    assert all(out["reasons"].values())  # nothing can run on this simulated machine


def test_harness_modules_import_no_framework_even_when_installed():
    # Without blocking: catches a framework import hidden behind try/except ImportError, which the
    # blocked test would not notice (torch is installed in this environment, so it would load).
    proc = run_python(f"""
        import importlib
        for m in {COMMON_MODULES + ["backends", "backends.base"]!r}:
            importlib.import_module(m)
        import backends
        for n in backends.NAMES:
            backends.unavailable_reason(n)
        print(json.dumps({{"loaded": loaded_frameworks()}}))
    """, block=False)
    assert last_json(proc)["loaded"] == []


def test_blocking_really_blocks():
    # The harness of these tests: a blocked framework import fails, so a pass above means something.
    proc = run_python("""
        try:
            import torch
        except ImportError:
            print(json.dumps("blocked"))
        else:
            print(json.dumps("imported"))
    """)
    assert last_json(proc) == "blocked"


RUN_ALL = """
    import contextlib, io, runpy
    sys.argv = ["run_all.py", *{args!r}]
    out, code = io.StringIO(), None
    with contextlib.redirect_stdout(out):
        try:
            runpy.run_path("run_all.py", run_name="__main__")
        except SystemExit as exc:
            code = exc.code
    print(json.dumps({{"code": code, "stdout": out.getvalue(), "loaded": loaded_frameworks()}}))
"""


@pytest.mark.slow
def test_run_all_help_with_frameworks_blocked():
    out = last_json(run_python(RUN_ALL.format(args=["--help"])))
    assert out["code"] in (0, None)
    assert "--backend" in out["stdout"] and "--batch-size" in out["stdout"]
    for name in backends.NAMES:
        assert name in out["stdout"]
    assert out["loaded"] == []


@pytest.mark.slow
def test_run_all_list_with_frameworks_blocked():
    out = last_json(run_python(RUN_ALL.format(args=["--list"])))
    assert out["code"] in (0, None)
    for name in backends.NAMES:
        assert name in out["stdout"]
    assert "pip install" in out["stdout"]  # torch's reason names the fix
    assert out["loaded"] == []
