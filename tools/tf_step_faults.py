#!/usr/bin/env python3
"""Minor page faults and wall time per TensorFlow step, by where the batches come from
(benchmarks/README.md, "Idiom cost"):

    python -m tools.tf_step_faults SOURCE [ITERS [PRESET]]

SOURCE: `fit` (the backend's train: Keras fit over Dataset.from_generator), `dsloop` (the same
dataset iterated in Python, the backend's traced step called on each batch), `split` (as dsloop,
faults of the get-next and of the step printed apart), `slices` (Dataset.from_tensor_slices of
the same batches), `loop` (the traced step fed tensors made directly). Batch 64, synthetic data,
2 threads; prints the median faults and wall time per step after two warm-up steps. Run each
source in its own process (`MALLOC_*` environment variables change glibc's malloc for one).
"""
from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

SOURCES = ("fit", "dsloop", "split", "slices", "loop")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in SOURCES:
        sys.exit(f"usage: python -m tools.tf_step_faults {'|'.join(SOURCES)} [ITERS [PRESET]]")
    source = argv[0]
    iters = int(argv[1]) if len(argv) > 1 else 8
    from backends import compat
    compat.prepare_tensorflow()
    import tensorflow as tf

    import backends
    from backends.base import BackendOptions
    from backends.tensorflow import training
    from common import data
    from common.data import noise
    from common.spec import model_spec
    spec = model_spec(argv[2] if len(argv) > 2 else "dcgan64")
    ds = data.load_dataset("synthetic", spec.preset, seed=0)
    plan = noise.BatchPlan(len(ds.images), 64, 0)
    be = backends.load("tensorflow")(spec, BackendOptions(threads=2, device="cpu"))

    def batches():
        return noise.iterate_batches(ds.images, plan, spec.preset.nz, 0, iters)

    faults, times = [], []

    def mark(*_):
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)
        times.append(time.perf_counter())

    def step(real, z):
        float(be._step(real, z)[0])  # the backend's traced spec_iteration, synchronised
        mark()

    if source == "fit":
        be.train(batches(), 0, mark)
    elif source == "dsloop":
        for real, z in training.dataset(batches(), spec.preset):
            step(real, z)
    elif source == "split":
        parts = []
        it = iter(training.dataset(batches(), spec.preset))
        for _ in range(iters):
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            real, z = next(it)
            f1 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            step(real, z)
            parts.append((f1 - f0, faults[-1] - f1))
        print("faults of get-next / step:", parts)
    elif source == "slices":
        items = list(batches())
        pairs = (np.stack([a for a, _ in items]), np.stack([z for _, z in items]))
        for real, z in tf.data.Dataset.from_tensor_slices(pairs):
            step(real, z)
    else:
        for real, z in batches():
            step(tf.constant(real), tf.constant(z))
    d, t = np.diff(faults), np.diff(times)
    print(f"{source}: minor faults per step {np.median(d[2:]):.0f}, wall {np.median(t[2:]) * 1e3:.0f} ms "
          f"(every step: {d.tolist()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
