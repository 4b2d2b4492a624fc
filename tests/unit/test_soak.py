"""The memory soak's check (benchmarks/soak.py): it catches a planted leak and passes a flat loop.

The slow test samples two stand-in loops (no framework) side by side, as the soak samples a
backend: one keeps every 4 KiB block it allocates in a growing list (a step log held in memory),
the other frees each block before the next. The check must call the first "grows" with the
slope it planted, and the second "flat"."""
from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from benchmarks import soak

BLOCK = 4096  # bytes the leaking loop keeps per iteration
# Planted slope in MiB per 1000 iterations; measured on top of it: each block's bytearray header
# and malloc's chunk header (under 100 bytes, 2.4%) and the list's pointer (8 bytes, with its
# over-allocation at most 16: 0.4%), so the fit lies within 5% of it (3% of overhead, plus the
# spread of a fit over a few thousand iterations).
PLANTED = BLOCK * 1000 / soak.MIB
LOOP = f"""
import sys, time
count_path, leak = sys.argv[1], sys.argv[2] == "leak"
held, i = [], 0
while True:
    block = bytearray({BLOCK})
    if leak:
        held.append(block)
    i += 1
    if i % 20 == 0:
        with open(count_path + ".tmp", "w") as f:
            f.write(str(i))
        import os; os.replace(count_path + ".tmp", count_path)
    time.sleep(0.001)
"""


def _counter(path: Path):
    def read() -> int:
        try:
            return int(path.read_text() or 0)
        except (OSError, ValueError):
            return 0
    return read


def _synthetic(slope_per_k: float, noise: float, n: int = 200, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [{"t": float(i), "iterations": 50 * i,
             "rss_mib": 300 + slope_per_k * 50 * i / 1000 + rng.gauss(0, noise)} for i in range(n)]


def test_the_fit_passes_noise_and_catches_a_slope_above_it():
    flat = soak.fit(_synthetic(0.0, 2.0), warmup_fraction=0.25)
    assert flat["status"] == "flat" and abs(flat["slope_mib_per_1k_iters"]) <= flat["bound"]
    # sigma 2 MiB, 7.5k iterations after warm-up (the last three quarters of 10k): the floor
    # 2 sigma / span, 0.53 MiB per 1000 iterations, is the bound (3 SE is 0.15); the sample
    # sigma of 150 draws is within 15% of 2 at over 3 standard deviations
    assert flat["bound"] == pytest.approx(4 / 7.45, rel=0.15)
    leak = soak.fit(_synthetic(2.0, 2.0))
    assert leak["status"] == "grows" and leak["slope_mib_per_1k_iters"] == pytest.approx(2.0, rel=0.1)


def test_warm_up_is_left_out_of_the_fit():
    samples = _synthetic(0.0, 0.5)
    for s in samples[:40]:  # pools filling during the first fifth: not a leak
        s["rss_mib"] -= 100 - 2.5 * s["t"]
    assert soak.fit(samples, warmup_fraction=0.25)["status"] == "flat"
    assert soak.fit(samples, warmup_fraction=0.0)["status"] == "grows"


def test_refit_judges_a_finished_soak_s_samples_again_with_another_warm_up(tmp_path):
    """A soak whose pools filled past its warm-up reads "grows"; fitted again with a warm-up past
    the filling, from the samples it wrote, it reads "flat", and both files say how it was fitted."""
    samples = _synthetic(0.0, 0.5)
    for s in samples[:90]:  # pools filling during the first 45%: past a quarter, before half
        s["rss_mib"] -= 90 - s["t"]
    record = {"backend": "mxnet", "label": "mxnet", "iterations": 9950, "seconds": 199.0, "samples": 200}
    soak.judge(record, samples, 0.25)
    assert record["status"] == "grows"
    (tmp_path / "mxnet.samples.json").write_text(json.dumps(samples))
    (tmp_path / "soak.json").write_text(json.dumps({"command": "python -m benchmarks.soak --backend mxnet",
                                                    "machine": {}, "records": [record]}))
    assert soak.main(["--refit", str(tmp_path), "--warmup-fraction", "0.5"]) == 0
    doc = json.loads((tmp_path / "soak.json").read_text())
    assert doc["records"][0]["status"] == "flat" and doc["records"][0]["warmup_fraction"] == 0.5
    assert doc["refit"] == f"python -m benchmarks.soak --refit {tmp_path} --warmup-fraction 0.5"
    text = (tmp_path / "soak.md").read_text()
    assert "fitted again: `python -m benchmarks.soak --refit" in text and "(the first 0.5 of the time)" in text
    assert soak.main(["--refit", str(tmp_path / "none")]) == 2


def test_too_few_samples_are_no_verdict():
    assert soak.fit(_synthetic(5.0, 0.1, n=8))["status"] == "too short"
    assert soak.fit([])["status"] == "too short"


@pytest.mark.slow
def test_the_soak_catches_a_planted_leak_and_passes_a_flat_loop(tmp_path):
    results = {}

    def run(kind):
        count = tmp_path / f"{kind}.count"
        proc = subprocess.Popen([sys.executable, "-c", LOOP, str(count), kind])
        try:
            samples = soak.sample(proc.pid, _counter(count), seconds=15, interval=0.2)
        finally:
            proc.kill()
            proc.wait()
        results[kind] = soak.fit(samples)

    threads = [threading.Thread(target=run, args=(k,)) for k in ("leak", "flat")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    leak, flat = results["leak"], results["flat"]
    assert leak["status"] == "grows", leak
    assert leak["slope_mib_per_1k_iters"] == pytest.approx(PLANTED, rel=0.05), leak
    assert flat["status"] == "flat", flat
    assert flat["bound"] < PLANTED / 10, flat  # a leak a tenth the planted one would be caught


def test_a_label_of_an_environment_that_is_not_built_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DCGAN_BENCH_ENVS_DIR", str(tmp_path))  # no environment built here
    with pytest.raises(SystemExit) as e:
        soak.parse_args(["--backend", "jax@nosuch"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "nosuch" in err[0]
    assert soak.parse_args(["--backend", "jax"]).backends == ["jax"]

