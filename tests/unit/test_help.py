"""--help a person can scan: groups, an examples epilog, every option explained with one
default, run modes that refuse what they would ignore, messages that name the fix."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import backends
from common import options
from tests.support.processes import one_line_error, run_cli


def _help() -> str:
    return options.build_parser(backend_names=backends.NAMES).format_help()


def test_help_is_grouped_with_examples():
    text = _help()
    heads = [line[:-1] for line in text.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert heads[heads.index("data"):] == [*options.GROUPS, "examples"]
    assert "python run_all.py --backend all@newest --dataset mnist" in text.split("examples:")[1]


@pytest.mark.parametrize("name", list(options.options()))
def test_every_option_has_help_with_at_most_one_default(name):
    opt = options.options()[name]
    assert opt.help.strip(), name
    assert opt.help.count("default") <= 1, opt.help
    # run modes have no default to state; every other option says its default once
    if opt.group != options.OTHER:
        assert "default" in opt.help, name


def test_backend_help_names_the_registry_handed_in():
    """common/options.py is below backends/: the command line hands it the registry's names."""
    (entry,) = [b for b in re.split(r"\n  (?=--)", _help()) if b.startswith("--backend ")]
    assert ", ".join(backends.NAMES) in " ".join(entry.split())
    assert "{backend_names}" not in options.build_parser().format_help()


def test_threads_default_is_all_cores_not_this_machines_count():
    (entry,) = [b for b in re.split(r"\n  (?=--)", _help()) if b.startswith("--threads")]
    assert "all cores" in entry and not re.search(r"default:? \d", entry)


def test_device_and_devices_say_they_differ():
    h = options.options()
    assert "not --devices" in h["device"].help and "not --device)" in h["devices"].help


@pytest.mark.parametrize("given,expected", [
    ({"report", "compare", "iters"}, "--report and --compare cannot be combined"),
    ({"resume", "list"}, "--list and --resume cannot be combined"),
    ({"compare", "iters"}, "--compare trains nothing, so --iters does not apply; drop it"),
    ({"report", "iters", "batch_size"}, "so --batch-size, --iters do not apply; drop them"),
    ({"list", "quiet"}, None),
    ({"resume", "quiet"}, None),
])
def test_run_modes_refuse_each_other_and_training_options(given, expected):
    got = options.run_mode_conflict(given)
    assert (got is None) if expected is None else (expected in got), got


@pytest.mark.parametrize("args,expected", [
    (["--compare", "r1", "r2", "--report", "r2", "--iters", "7"], "cannot be combined"),
    (["--backend", "all,pytorch"], "'all' stands alone"),
    (["--backend", "pytorch,nope"], "unknown backend nope; valid: all, or a list of"),
    (["--resume", "/nonexistent-dcgan-bench"], "/nonexistent-dcgan-bench: no such folder"),
])
def test_messages_name_the_fix(args, expected):
    assert expected in one_line_error(run_cli(*args, timeout=120))


def test_an_existing_out_is_refused_before_any_data_is_touched(tmp_path, offline_env):
    existing = tmp_path / "run"
    existing.mkdir()
    # mnist with closed mirrors would print the fallback note: refused before that
    line = one_line_error(run_cli("--dataset", "mnist", "--out", str(existing), env=offline_env))
    assert "already exists" in line
    assert not (tmp_path / "cache").exists()


def test_resume_of_a_finished_run_changes_nothing(tmp_path):
    run = tmp_path / "done"
    run.mkdir()
    fixture = json.loads((Path(__file__).parents[1] / "fixtures" / "results-v1.json").read_text())
    assert all(r["status"] in ("ok", "skipped") for r in fixture["backends"].values())
    (run / "results.json").write_text(json.dumps(fixture))
    before = (run / "results.json").read_bytes()
    proc = run_cli("--resume", str(run), timeout=120)
    assert proc.returncode == 0 and "nothing to resume" in proc.stderr, proc.stderr
    assert (run / "results.json").read_bytes() == before


@pytest.fixture
def offline_env(tmp_path):
    from tests.support.processes import offline
    return offline(tmp_path)
