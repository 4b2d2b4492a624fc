"""common/options.py is the one definition of run_all.py's options: every field reaches argparse,
the stored configuration, the child and resume's check, and a version-1 results.json still fits."""
from __future__ import annotations

import dataclasses
import json
import shlex
import sys
import typing
from pathlib import Path

import pytest

from common import options
from common.harness import resume
from tests.support.processes import REPO

sys.path.insert(0, str(REPO))
import backends
import run_all  # noqa: E402

V1 = Path(__file__).resolve().parents[1] / "fixtures" / "results-v1.json"
NAMES = list(options.options())


def _v1() -> dict:
    return json.loads(V1.read_text())


TYPES = typing.get_type_hints(options.RunOptions)
# What run_all.py's own checks need beside an option (--sync-bn needs replicas, --nodes a
# rendezvous and a multi-host backend).
NEEDS = {"sync_bn": ["--devices", "4"], "compile_mode": ["--compile"], "nodes": ["--backend", "pytorch", "--rdzv-endpoint", "h:1"],
         "rdzv_endpoint": ["--backend", "pytorch", "--nodes", "2"],
         "node_rank": ["--backend", "pytorch", "--nodes", "8", "--rdzv-endpoint", "h:1"],
         "hostfile": ["--backend", "chainer", "--nodes", "2"]}


def _sample_argv(name: str) -> list[str]:
    """The option given on a command line with a valid value that is neither its default nor
    the value the version-1 fixture stores."""
    opt, flag, default = options.options()[name], options.flag(name), getattr(options.DEFAULTS, name)
    if isinstance(default, bool):
        return [f"--no-{flag[2:]}"] if default else [flag]
    if opt.nargs:
        return [flag, *("x" * opt.nargs)]
    if opt.choices:
        return [flag, opt.choices[-1]]
    if {int, float} & set(typing.get_args(TYPES[name]) or [TYPES[name]]):
        return [flag, "4"]
    return [flag, {"backend": "pytorch", "seeds": "3,4", "rdzv_endpoint": "h:1",
                  "hostfile": str(Path(__file__).parents[2] / "README.md")}.get(name, "x")]


@pytest.mark.parametrize("name", NAMES)
def test_every_option_is_in_argparse_and_detected_when_given(name):
    argv = _sample_argv(name)
    parsed = options.build_parser().parse_args(argv)
    assert getattr(parsed, name) != getattr(options.DEFAULTS, name)
    assert options.given_options(argv) == {name}
    assert options.given_options([]) == set()
    opt = options.options()[name]
    help_text = options.build_parser().format_help()
    assert options.flag(name) in help_text
    assert " ".join(opt.help.split()[:3]) in " ".join(help_text.split())


def test_defaults_are_the_dataclass_defaults():
    parsed = vars(options.build_parser().parse_args([]))
    assert parsed == dataclasses.asdict(options.DEFAULTS)


@pytest.mark.parametrize("name", NAMES)
def test_every_option_has_a_resume_rule_that_resume_applies(name, tmp_path):
    """Given with --resume: a free option passes, a stored one is compared with the stored value
    (equal passes, different is refused naming it), any other is refused naming it."""
    config = _v1()["config"]
    if name in options.RUN_MODES and name != "resume":  # refused while parsing: one mode at a time
        with pytest.raises(SystemExit):
            run_all.parse_args(["--resume", str(tmp_path), *_sample_argv(name)])
        assert "cannot be combined" in options.run_mode_conflict({"resume", name})
        return
    args = run_all.parse_args(["--resume", str(tmp_path), *NEEDS.get(name, []), *_sample_argv(name)])
    mode = options.resume_mode(name)
    assert mode in (options.COMPARE, options.FREE, options.EXCLUSIVE, options.REFUSED, options.CHANGEABLE)
    problem = resume.conflicts(args, {name}, config)
    if mode in (options.FREE, options.CHANGEABLE):  # CHANGEABLE: the new value wins (test_resume.py)
        assert problem is None
        return
    assert options.flag(name) in problem
    if mode == options.COMPARE:
        assert "differs from the run's stored" in problem
        stored = options.stored_value(name, config)
        setattr(args, options.options()[name].attr or name, stored)
        assert resume.conflicts(args, {name}, config) is None
    else:
        assert "cannot be combined with --resume" in problem


def test_the_stored_configuration_is_version_1s_and_round_trips():
    """The v1 file's command gives its stored configuration (quality is the run's, not an
    option); resume's reading of it gives it back."""
    v1 = _v1()
    config = {k: v for k, v in v1["config"].items() if k != "quality"}
    argv = shlex.split(v1["command"])[2:] + ["--threads", str(config["threads"])]
    args = run_all.parse_args(argv)
    # "--backend all" means every backend registered now (the v1 file's run had four).
    assert v1["config"]["backends"] == ["pytorch", "tensorflow", "mxnet", "chainer"]
    assert options.stored_config(args, preset="mnist32", iters=40) == dict(config, backends=list(backends.NAMES))
    stored_keys = {opt.key or name for name, opt in options.options().items() if opt.stored}
    assert stored_keys == set(config) | {"seeds", "checkpoint_every", "onednn", "compile_mode"}  # written when used
    again = run_all.parse_args(["--resume", "x"])
    resume.apply(again, v1["config"], v1["dataset"])
    # The data as resolved then (the offline fallback stays the fallback); the rest as stored.
    assert options.stored_config(again, preset=again.preset, iters=again.iters) == \
        dict(config, dataset=v1["dataset"]["name"])
    assert again.quality_every == v1["config"]["quality"]["every"]


def test_optional_options_used_when_given_are_stored():
    args = run_all.parse_args(["--seeds", "0,1", "--checkpoint-every", "5"])
    config = options.stored_config(args, preset="mnist32", iters=40)
    assert config["seeds"] == [0, 1] and config["checkpoint_every"] == 5


def test_options_added_later_take_their_defaults_when_absent():
    v1 = _v1()
    late = [name for name, opt in options.options().items() if opt.late]
    assert set(late) == {"compile", "compile_mode", "onednn", "devices", "sync_bn", "checkpoint_every"}
    old = {k: v for k, v in v1["config"].items() if k not in late}
    args = run_all.parse_args(["--resume", "x"])
    resume.apply(args, old, v1["dataset"])
    assert all(getattr(args, name) == getattr(options.DEFAULTS, name) for name in late)
    incomplete = {k: v for k, v in old.items() if k != "bf16"}  # an option of schema 1's start
    with pytest.raises(KeyError):
        resume.apply(args, incomplete, v1["dataset"])


def test_a_version_1_run_folder_can_be_resumed(tmp_path):
    (tmp_path / "results.json").write_text(V1.read_text())
    args = resume.resume_args(run_all.parse_args(["--resume", str(tmp_path), "--quiet"]))
    # the stored four, named: "all" now means five
    assert args.backends == ["pytorch", "tensorflow", "mxnet", "chainer"]
    assert args.backend == "pytorch,tensorflow,mxnet,chainer"
    assert (args.iters, args.batch_size, args.dataset, args.quiet) == (40, 64, "mnist-5k", True)


def test_the_child_config_keeps_its_keys():
    """The child's config is hashed into every checkpoint (common/harness/checkpoint.py): its
    entries stay those a version-1 run wrote, or its checkpoints would not resume."""
    args = run_all.parse_args([])
    assert set(options.child_settings(args, preset="mnist32", iters=3)) == {
        "preset", "iters", "batch_size", "nodes", "rdzv_endpoint", "quiet", "checkpoint_every",
        "hostfile"}  # hashed only when set (common/harness/checkpoint.py)
    assert set(options.backend_settings(args)) == {
        "device", "seed", "threads", "channels_last", "bf16", "xla", "onednn", "compile",
        "compile_mode", "devices", "nodes", "sync_bn", "verbose", "rdzv_endpoint", "node_rank",
        "host_timeout"}


def test_backend_options_are_the_backend_subset_frozen_with_their_defaults():
    from backends.base import BackendOptions
    assert BackendOptions is options.BackendOptions
    assert dataclasses.asdict(BackendOptions()) == {
        "device": "auto", "seed": 0, "threads": None, "channels_last": False, "bf16": False,
        "xla": False, "onednn": False, "compile": False, "compile_mode": "default", "devices": 1,
        "nodes": 1, "sync_bn": False, "verbose": False, "rdzv_endpoint": None, "node_rank": None,
        "host_timeout": None}
    with pytest.raises(dataclasses.FrozenInstanceError):
        BackendOptions().device = "cpu"
    assert BackendOptions(**options.backend_settings(run_all.parse_args([]))).threads \
        == options.DEFAULTS.threads


def test_compile_mode_needs_compile_and_is_stored_only_when_set(capsys):
    with pytest.raises(SystemExit):
        run_all.parse_args(["--compile-mode", "max-autotune"])
    assert "add --compile" in capsys.readouterr().err.strip().splitlines()[-1]
    plain = options.stored_config(run_all.parse_args(["--compile"]), preset="mnist32", iters=40)
    assert "compile_mode" not in plain  # a run without it stores what it stored before
    tuned = options.stored_config(run_all.parse_args(["--compile", "--compile-mode", "max-autotune"]),
                                  preset="mnist32", iters=40)
    assert tuned["compile_mode"] == "max-autotune"
    assert options.stored_value("compile_mode", plain) == "default"
