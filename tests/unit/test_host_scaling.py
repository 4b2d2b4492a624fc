"""benchmarks/host_scaling.py without training: its table from run records, its refusals, and
an interrupted study continued by the same command (run_layout stands in for run_all.py)."""
from __future__ import annotations

import json

import pytest

from benchmarks import host_scaling as hs

ONE, TWO_DEVICES, TWO_HOSTS = (label for label, _, _ in hs.LAYOUTS)


def _rec(layout, repeat, speed, backend="jax"):
    return {"backend": backend, "layout": layout, "repeat": repeat, "status": "ok" if speed else "failed",
            "img_per_s": speed, "replicas": 1 if layout == ONE else 2, "engine": "e", "reason": None}


def test_rows_give_efficiency_and_whether_two_hosts_differ_from_one():
    records = [_rec(ONE, r, 100.0 + r) for r in range(3)]
    records += [_rec(TWO_DEVICES, r, 150.0 + r) for r in range(3)]
    records += [_rec(TWO_HOSTS, r, 100.0 + r) for r in range(3)]
    rows = {r["layout"]: r for r in hs.rows(records)}
    assert rows[ONE]["efficiency"] == 1.0 and rows[TWO_DEVICES]["efficiency"] == round(151 / 202, 2)
    assert rows[TWO_HOSTS]["2 hosts vs 1 host"] == f"{101 / 151:.2f}x, ranges apart"
    assert rows[TWO_HOSTS]["range"] == "100.0-102.0" and rows[TWO_HOSTS]["runs"] == "3/3 ok"
    overlap = records[:6] + [_rec(TWO_HOSTS, r, s) for r, s in enumerate((140.0, 150.0, 160.0))]
    assert hs.rows(overlap)[-1]["2 hosts vs 1 host"].endswith("ranges overlap: not separated")
    one_each = [_rec(ONE, 0, 100.0), _rec(TWO_DEVICES, 0, 150.0), _rec(TWO_HOSTS, 0, 50.0)]
    assert hs.rows(one_each)[-1]["2 hosts vs 1 host"] == "0.33x, one run each: not separated"


def test_a_failed_run_is_counted_as_run_but_not_in_the_speed():
    rows = hs.rows([_rec(ONE, 0, 100.0), _rec(ONE, 1, None)])
    assert rows[0]["img/s"] == 100.0 and rows[0]["runs"] == "1/2 ok"


@pytest.mark.parametrize("argv,needle", [
    (["--backend", "theano", "--out", "x"], "choose from pytorch, tensorflow, mxnet, chainer, jax"),
    (["--repeats", "0", "--out", "x"], "--repeats must be positive"),
    (["--batch-size", "15", "--out", "x"], "even global batch")])
def test_bad_usage_is_one_line_and_exit_2(argv, needle, capsys):
    with pytest.raises(SystemExit) as e:
        hs.parse_args(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and needle in err[0]


def test_an_interrupted_study_is_continued_by_the_same_command(tmp_path, monkeypatch):
    out = tmp_path / "study"
    argv = ["--backend", "jax", "--iters", "5", "--repeats", "2", "--out", str(out)]
    trained = []

    def fake(args, backend, hosts, devices, folder):
        trained.append((folder.parent.parent.name, hosts, devices))
        if len(trained) == 4:
            raise KeyboardInterrupt  # the study stopped during its fourth run
        return {"backends": {backend: {"status": "ok", "summary": {"img_per_s_median": 10.0 * hosts * devices}}},
                "provenance": {"cpu": "Test CPU", "cpu_count": 2}, "config": {}}

    monkeypatch.setattr(hs, "run_layout", fake)
    monkeypatch.setattr(hs, "environment_lines", lambda run: [])
    with pytest.raises(KeyboardInterrupt):
        hs.main(argv)
    assert len(json.loads((out / "host_scaling.json").read_text())["records"]) == 3
    assert hs.main(argv) == 0
    # repeat 0 kept; the cut run (the 4th) trained again, then the rest
    assert trained[3:] == [("r1", 1, 1), ("r1", 1, 1), ("r1", 1, 2), ("r1", 2, 1)]
    assert len(json.loads((out / "host_scaling.json").read_text())["records"]) == 6
    with pytest.raises(SystemExit, match="holds the study of"):
        hs.main(argv[:-2] + ["--iters", "6", "--out", str(out)])
