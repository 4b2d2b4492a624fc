"""Every command line alike: one parser of a backend list and one builder of a run_all.py
command line (common/cli.py), the same one-line refusal from every entry point that takes
--backend, and an answer to -h from every `python -m` entry of benchmarks/ (and run_all.py)."""
from __future__ import annotations

import ast
import re
import subprocess
import sys

import pytest

import backends
import run_all
from common import cli, options
from common.options import UsageError
from tests.support.processes import REPO, one_line_error

NAMES = backends.NAMES


# ----- the backend list -----
@pytest.mark.parametrize("text,expected", [
    ("all", list(NAMES)), (" all ", list(NAMES)), ("jax", ["jax"]),
    ("jax, pytorch", ["jax", "pytorch"]), ("pytorch,,mxnet,", ["pytorch", "mxnet"])])
def test_a_backend_list_parses_in_its_order_with_spaces_stripped(text, expected):
    assert cli.parse_backends(text, NAMES) == expected


@pytest.mark.parametrize("text,message", [
    ("all,jax", "--backend all,jax: 'all' stands alone; pass --backend all or a list like pytorch,tensorflow"),
    ("pytorch,nope,caffe", "--backend pytorch,nope,caffe: unknown backend nope, caffe; valid: all, or a list of "
                           + ", ".join(NAMES)),
    (" , ", "--backend ' , ' names no backend; valid: all, or a list of " + ", ".join(NAMES)),
    ("jax,pytorch,jax", "--backend jax,pytorch,jax: jax named twice; name each backend once")])
def test_a_bad_backend_list_is_one_line_naming_the_fix(text, message):
    with pytest.raises(UsageError) as exc:
        cli.parse_backends(text, NAMES)
    assert str(exc.value) == message and "\n" not in message


# Every entry point that takes --backend, with what it needs besides to reach the check.
BACKEND_ENTRIES = {
    "run_all.py": [str(REPO / "run_all.py")],
    "benchmarks.throughput": ["-m", "benchmarks.throughput"],
    "benchmarks.scaling": ["-m", "benchmarks.scaling"],
    "benchmarks.time_to_target": ["-m", "benchmarks.time_to_target", "--target-fd", "500"],
    "benchmarks.soak": ["-m", "benchmarks.soak"],
    "benchmarks.gpu_check": ["-m", "benchmarks.gpu_check"],
    "benchmarks.bare": ["-m", "benchmarks.bare", "--out", "never-written.json"],
}


@pytest.mark.parametrize("value", ["pytorch,nope", "all,jax"])
def test_every_entry_point_refuses_a_bad_backend_list_alike(value, tmp_path):
    messages = set()
    for name, argv in BACKEND_ENTRIES.items():
        proc = subprocess.run([sys.executable, *argv, "--backend", value], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
        line = one_line_error(proc)  # exit 2, one line
        messages.add(line.split(": error: ", 1)[1])
    expected = str(pytest.raises(UsageError, cli.parse_backends, value, NAMES).value)
    assert messages == {f"{expected} (see --help)"}
    assert not list(tmp_path.iterdir())  # nothing written


# Every entry point that runs backends in other Python environments (NAME@ENV, all@ENV).
ENV_ENTRIES = {name: BACKEND_ENTRIES[name] for name in ("run_all.py", "benchmarks.throughput", "benchmarks.scaling")}


@pytest.mark.parametrize("value", ["pytorch@nope", "all@nope", "pytorch@relative/bin/python"])
def test_every_entry_point_with_environments_refuses_a_bad_env_alike_before_anything_runs(value, tmp_path):
    messages = set()
    for argv in ENV_ENTRIES.values():
        proc = subprocess.run([sys.executable, *argv, "--backend", value, "--out", str(tmp_path / "out")],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
                              env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin",
                                   "DCGAN_BENCH_ENVS_DIR": str(tmp_path / "envs")})
        line = one_line_error(proc)  # exit 2, one line
        messages.add(line.split(": error: ", 1)[1].removesuffix(" (see --help)"))
    assert len(messages) == 1, messages  # the same words from each
    assert ("unknown environment" if "nope" in value else "absolute path") in messages.pop()
    assert not list(tmp_path.iterdir())  # nothing written


# ----- the run_all.py command line -----
def test_the_built_command_parses_back_to_the_same_values(tmp_path):
    values = dict(backend=["pytorch", "jax"], dataset="synthetic", preset="mnist32", batch_size=16, iters=3,
                  device="cpu", threads=2, out=tmp_path / "run", quiet=True, quality_every=0, figures=False,
                  shared_init=False, seeds="0,1")
    argv = cli.run_all_command(**values)
    assert argv[:2] == [sys.executable, "run_all.py"]
    args = run_all.parse_args(argv[2:])
    assert args.backends == ["pytorch", "jax"] and args.seed_list == [0, 1]
    for name, value in values.items():
        expected = ",".join(value) if isinstance(value, list) else str(value) if name == "out" else value
        assert getattr(args, name) == expected, name
    # a default-valued flag adds nothing; None leaves the option out; a pair is two values
    assert cli.run_all_command(quiet=False, figures=True, iters=None)[2:] == []
    assert cli.run_all_command(compare=("a", "b"))[2:] == ["--compare", "a", "b"]
    with pytest.raises(TypeError, match="--turbo"):
        cli.run_all_command(turbo=True)


def test_a_benchmark_option_keeps_run_all_help_with_its_own_default():
    p = cli.entry_parser("x", "doc")
    cli.add_run_options(p, "backend", "preset", backend_names=backends.NAMES,
                        preset=("mnist32", "mnist32"))
    assert p.parse_args([]).preset == "mnist32" and p.parse_args([]).backend == options.DEFAULTS.backend
    text = p.format_help()
    assert "network preset (default mnist32)" in text and text.count("default") == 2


# ----- -h everywhere -----
def python_m_entries() -> list[str]:
    """Every `python -m` entry under benchmarks/, common/ and tests/support/ (tools/ has its own
    test, test_tools.py): a package with __main__.py, or a module that runs
    `if __name__ == "__main__"`."""
    entries = []
    paths = [p for folder in ("benchmarks", "common", "tests/support") for p in (REPO / folder).rglob("*.py")]
    for path in sorted(paths):
        tree = ast.parse(path.read_text())
        runs = any(isinstance(node, ast.If) and "__main__" in ast.unparse(node.test) for node in tree.body)
        if not runs:
            continue
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        entries.append(".".join(parts[:-1] if parts[-1] == "__main__" else parts))
    return entries


def test_the_entries_are_found():
    assert {"benchmarks.throughput", "benchmarks.gpu_check", "benchmarks.gpu_check.probe",
            "benchmarks.bare", "common.harness.worker", "tests.support.pytorch_reference",
            "benchmarks.configs", "benchmarks.grid_output", "benchmarks.grid_rows",
            "benchmarks.gpu_check.quality_step", "benchmarks.gpu_check.summary"} <= set(python_m_entries())


def test_every_module_of_the_commands_layer_is_an_entry():
    """A user tries `python -m` on any module of benchmarks/ (the commands layer): one that only
    serves a command says so (benchmarks.internal_entry) rather than printing nothing."""
    modules = {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__main__")
               for p in (REPO / "benchmarks").rglob("*.py") if p.name != "__init__.py"}
    assert modules - set(python_m_entries()) == set()


@pytest.mark.parametrize("entry", ["run_all.py", *python_m_entries()])
def test_every_entry_answers_help(entry):
    argv = [str(REPO / entry)] if entry.endswith(".py") else ["-m", entry]
    proc = subprocess.run([sys.executable, *argv, "-h"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    if len(lines) == 1:  # a child-process entry: says it is internal, and what to run instead
        assert "internal" in lines[0] and re.search(r"; run python (-m \S+|run_all\.py)", lines[0]), lines
    else:  # its purpose (the description under usage) and its options, each explained
        assert lines[0].startswith("usage: ") and "options:" in lines, lines
        flat = " ".join(proc.stdout.split())  # an option's help wraps over lines
        assert not re.search(r"\(default[^()]*\) \(default", flat), proc.stdout  # each default once
