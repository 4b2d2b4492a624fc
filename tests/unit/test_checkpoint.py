"""common/harness/checkpoint.py without any framework: what is written, what is loaded, what is refused."""
from __future__ import annotations

import json

import pytest

from common.harness import checkpoint

CONFIG = {"backend": "pytorch", "preset": "mnist32", "batch_size": 16, "seed": 0,
          "dataset": {"name": "synthetic", "data_dir": None}, "options": {"device": "cpu"}}


def _writer(payload: bytes):
    def write(folder):
        (folder / "state.bin").write_bytes(payload)
        (folder / "sub").mkdir()
        (folder / "sub" / "more.bin").write_bytes(payload[::-1])
    return write


def _save(root, iteration, config=CONFIG):
    return checkpoint.save(root, iteration, _writer(f"state {iteration}".encode() * 100), config,
                           {"train_seconds": float(iteration)})


def test_the_newest_verified_checkpoint_is_loaded_and_only_two_are_kept(tmp_path):
    root = tmp_path / "checkpoints"
    for i in (5, 10, 15):
        _save(root, i)
    assert [p.name for _, p in checkpoint.checkpoints(root)] == ["iter-000015", "iter-000010"]
    found = checkpoint.latest(root, CONFIG, warn=pytest.fail)
    assert found.iteration == 15 and found.manifest["harness"]["train_seconds"] == 15.0
    assert set(found.manifest["files"]) == {"state.bin", "sub/more.bin"}
    assert not list(root.glob(".*"))  # no temporary folder left behind


@pytest.mark.parametrize("damage", ["truncated-file", "changed-byte", "no-manifest",
                                    "extra-file", "missing-file", "garbled-manifest"])
def test_a_torn_checkpoint_is_never_loaded_the_previous_one_is(tmp_path, damage):
    root = tmp_path / "checkpoints"
    _save(root, 5)
    newest = _save(root, 10)
    state = newest / "state.bin"
    if damage == "truncated-file":
        state.write_bytes(state.read_bytes()[:-7])
    elif damage == "changed-byte":
        data = bytearray(state.read_bytes())
        data[3] ^= 1
        state.write_bytes(bytes(data))
    elif damage == "no-manifest":
        (newest / checkpoint.MANIFEST).unlink()
    elif damage == "extra-file":
        (newest / "stray.bin").write_bytes(b"x")
    elif damage == "missing-file":
        (newest / "sub" / "more.bin").unlink()
    else:
        (newest / checkpoint.MANIFEST).write_bytes(b'{"format_version": 1, "iter')
    warnings = []
    found = checkpoint.latest(root, CONFIG, warn=warnings.append)
    assert found.iteration == 5
    (line,) = warnings
    assert "iter-000010 skipped" in line


def test_a_half_written_folder_is_ignored_and_removed_by_the_next_save(tmp_path):
    root = tmp_path / "checkpoints"
    _save(root, 5)
    (root / ".iter-000010.abc.tmp").mkdir()  # a save killed before its rename
    (root / ".iter-000010.abc.tmp" / "state.bin").write_bytes(b"half")
    assert checkpoint.latest(root, CONFIG, warn=pytest.fail).iteration == 5
    _save(root, 10)
    assert not (root / ".iter-000010.abc.tmp").exists()


def test_a_failing_writer_leaves_no_checkpoint(tmp_path):
    root = tmp_path / "checkpoints"

    def broken(folder):
        (folder / "state.bin").write_bytes(b"part")
        raise OSError("disk full")
    with pytest.raises(OSError):
        checkpoint.save(root, 5, broken, CONFIG)
    assert list(root.iterdir()) == []
    assert checkpoint.latest(root, CONFIG) is None


def test_newer_format_or_other_configuration_is_refused_not_skipped(tmp_path):
    root = tmp_path / "checkpoints"
    folder = _save(root, 5)
    with pytest.raises(checkpoint.CheckpointError, match="different configuration"):
        checkpoint.latest(root, dict(CONFIG, batch_size=32))
    manifest = json.loads((folder / checkpoint.MANIFEST).read_text())
    manifest["format_version"] = checkpoint.FORMAT_VERSION + 1
    (folder / checkpoint.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(checkpoint.CheckpointError, match="newer than this dcgan-bench"):
        checkpoint.latest(root, CONFIG)


def test_config_hash_ignores_what_does_not_change_the_training():
    same = dict(CONFIG, quiet=True, out_dir="/elsewhere", resume=True, checkpoint_every=7,
                dataset={"name": "synthetic", "data_dir": "/moved"},
                options={"device": "cpu", "verbose": True})
    assert checkpoint.config_hash(same) == checkpoint.config_hash(CONFIG)
    assert checkpoint.config_hash(dict(CONFIG, seed=1)) != checkpoint.config_hash(CONFIG)


def test_an_option_added_later_hashes_only_when_set():
    """A checkpoint written before --compile-mode existed (its config lacks it) still resumes a
    run at the default; another mode is another training."""
    before = dict(CONFIG, options={"device": "cpu", "compile": True})
    now = dict(CONFIG, options={"device": "cpu", "compile": True, "compile_mode": "default"})
    autotuned = dict(CONFIG, options={"device": "cpu", "compile": True, "compile_mode": "max-autotune"})
    assert checkpoint.config_hash(now) == checkpoint.config_hash(before)
    assert checkpoint.config_hash(autotuned) != checkpoint.config_hash(before)


def test_loss_log_is_cut_back_to_the_checkpoint(tmp_path):
    csv = tmp_path / "losses.csv"
    rows = [f"pytorch,{i},0.{i},1.{i},0.01" for i in range(8)]
    csv.write_text("backend,iteration,loss_d,loss_g,step_seconds\n" + "\n".join(rows) + "\npytorch,8,0.")
    checkpoint.truncate_losses(csv, 5)
    assert csv.read_text().splitlines() == ["backend,iteration,loss_d,loss_g,step_seconds", *rows[:5]]
    checkpoint.truncate_losses(csv, 0)
    assert csv.read_text().splitlines() == ["backend,iteration,loss_d,loss_g,step_seconds"]
