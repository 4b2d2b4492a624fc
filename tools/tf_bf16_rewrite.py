#!/usr/bin/env python3
"""TensorFlow's two bf16 routes on a CPU, timed interleaved (benchmarks/README.md, "What was tried
for TensorFlow's best"):

    python -m tools.tf_bf16_rewrite [PRESET [ITERS [ROUNDS]]]     # default mnist32 40 3

Four variants of the backend's own run (the harness worker, batch 64, synthetic data, 2 threads,
the same initial weights): `spec`; `keras_bf16` (the backend's --bf16: Keras' mixed_bfloat16
policy, what `best` runs); `grappler_bf16` (spec, with Grappler's oneDNN auto mixed precision
rewrite, `auto_mixed_precision_onednn_bfloat16`, switched on before anything is built); `both`.
Each round runs every variant once, each in its own process; prints every run's median img/s
and final losses, then each variant's median over the rounds and its ratio to spec's.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {"spec": (False, False), "keras_bf16": (True, False), "grappler_bf16": (False, True),
            "both": (True, True)}
# The worker with Grappler's rewrite on: it must be set before the backend builds a graph.
WITH_REWRITE = ("import sys, runpy, tensorflow as tf; tf.config.optimizer.set_experimental_options("
                "{'auto_mixed_precision_onednn_bfloat16': True}); sys.argv = ['worker', sys.argv[1]]; "
                "runpy.run_module('common.harness.worker', run_name='__main__')")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    preset = argv[0] if argv else "mnist32"
    iters, rounds = (int(argv[1]) if len(argv) > 1 else 40), (int(argv[2]) if len(argv) > 2 else 3)
    work = Path(tempfile.mkdtemp(prefix="tf-bf16-"))
    # run_all's own config and shared initial weights, from a one-iteration run
    subprocess.run([sys.executable, "run_all.py", "--backend", "tensorflow", "--dataset", "synthetic",
                    "--preset", preset, "--batch-size", "64", "--iters", "1", "--threads", "2",
                    "--device", "cpu", "--quality-every", "0", "--no-figures", "--quiet",
                    "--out", str(work / "template")], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    base = json.loads((work / "template" / "backends" / "tensorflow" / "config.json").read_text())
    base["iters"] = iters
    img_s: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for k in range(rounds):
        for name, (keras_bf16, rewrite) in VARIANTS.items():
            out = work / f"{name}-{k}"
            out.mkdir()
            config = dict(base, out_dir=str(out), options=dict(base["options"], bf16=keras_bf16))
            (out / "config.json").write_text(json.dumps(config))
            cmd = ([sys.executable, "-c", WITH_REWRITE] if rewrite
                   else [sys.executable, "-m", "common.harness.worker"]) + [str(out / "config.json")]
            with open(out / "stderr.log", "w") as err:
                subprocess.run(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)
            r = json.loads((out / "result.json").read_text())
            if r["status"] != "ok":
                print(f"{name} round {k + 1}: {r['status']}: {r.get('reason')}", file=sys.stderr)
                return 1
            img_s[name].append(r["summary"]["img_per_s_median"])
            print(f"round {k + 1} {name:14s} {img_s[name][-1]:7.1f} img/s  final losses "
                  f"{r['final_losses']['loss_d']:.4f} / {r['final_losses']['loss_g']:.4f}", flush=True)
    spec = statistics.median(img_s["spec"])
    for name, values in img_s.items():
        print(f"{preset} batch 64, {name:14s} median {statistics.median(values):7.1f} img/s "
              f"(range {min(values):.1f}-{max(values):.1f}), x{statistics.median(values) / spec:.2f} spec")
    print(f"runs: {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
