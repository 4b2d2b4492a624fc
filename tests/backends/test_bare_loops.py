"""benchmarks/bare: each framework's bare loop computes exactly its backend's train_step, and the
CLI writes its result file (or one clear line when it cannot)."""
from __future__ import annotations

import importlib
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import backends
from benchmarks.bare import loop
from common import canonical
from common.spec import model_spec
from tests.support.backends import require_backend, shared_init_backend
from tests.support.processes import REPO
from tests.support.processes import last_json, run_python

PRESET, BATCH, ITERS, SEED = "mnist32", 8, 3, 1  # seed 1: not run()'s default weights


@pytest.mark.slow
@pytest.mark.parametrize("name", backends.NAMES)
def test_bare_loop_is_the_backends_step(name):
    """Same canonical weights, batch and z; 3 bare iterations against 3 of train_step.

    Tolerance: zero. Both loops run in this process, with the same thread settings, the same
    framework kernels (G and D from the backend's models.py, Adam with the backend's
    hyperparameters) on the same float32 arrays, issuing the same operations in the same order,
    and these CPU kernels are deterministic for a fixed thread count: every float32 result is
    the same bits. A difference is therefore not rounding to tolerate but a different step (an
    operation, its order, a hyperparameter, a BN update). Measured: the TF bare loop with Keras's
    Adam on a plain lr instead of the backend's SpecStepSize gives loss_g 2.3e-5 off at the
    first iteration and 1.8e-2 by the fifth."""
    require_backend(name)
    spec = model_spec(PRESET)
    init = canonical.draw_initial_weights(spec, SEED)
    bare = importlib.import_module(f"benchmarks.bare.{name}").run(
        PRESET, BATCH, ITERS, threads=0, init_weights=init)  # 0: this process's thread settings
    backend = shared_init_backend(name, PRESET, seed=SEED)
    real, z = loop.fixed_batch(spec, BATCH)
    reference = np.array([backend.train_step(real, z) for _ in range(ITERS)])
    losses = np.array(bare["losses"])
    assert losses.shape == (ITERS, 2)
    np.testing.assert_array_equal(losses, reference.astype(losses.dtype),
                                  err_msg=f"{name}: the bare step is not the backend's step")
    assert len(set(losses[:, 0])) == ITERS  # weights really change between iterations
    assert len(bare["step_seconds"]) == ITERS and all(s > 0 for s in bare["step_seconds"])
    assert bare["peak_memory"]["kind"] == "rss" and bare["peak_memory"]["bytes"] > 0
    assert bare["framework_version"] and isinstance(bare["threads"], dict)


def test_one_bare_loop_per_backend_importing_no_framework():
    assert sorted(p.stem for p in (REPO / "benchmarks" / "bare").glob("*.py")
                  if p.stem not in ("__init__", "__main__", "loop")) == sorted(backends.NAMES)
    # Frameworks installed and not blocked: a module-level import would show up as loaded.
    proc = run_python(f"""
        import importlib
        for m in ["benchmarks.bare.__main__", "benchmarks.bare.loop",
                  *("benchmarks.bare." + n for n in {backends.NAMES!r})]:
            importlib.import_module(m)
        print(json.dumps(loaded_frameworks()))
    """, block=False)
    assert last_json(proc) == []


def _cli(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "benchmarks.bare", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_cli_writes_the_result_json(tmp_path):
    require_backend("pytorch")
    out = tmp_path / "bare.json"
    proc = _cli("--backend", "pytorch", "--batch-size", "4", "--iters", "2", "--threads", "1",
                "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert set(result) == {"step_seconds", "losses", "peak_memory", "framework_version", "threads"}
    assert len(result["step_seconds"]) == 2 and len(result["losses"]) == 2
    assert all(math.isfinite(v) for pair in result["losses"] for v in pair)
    assert result["peak_memory"]["kind"] == "rss" and result["peak_memory"]["bytes"] > 0
    assert result["threads"]["torch.get_num_threads"] == 1  # --threads reached the framework


def test_cli_refuses_bad_input_in_one_line(tmp_path):
    out = tmp_path / "bare.json"
    proc = _cli("--backend", "pytorch", "--batch-size", "0", "--out", str(out))
    assert proc.returncode == 2 and "--batch-size" in proc.stderr
    env = dict(os.environ, **{backends.HIDE_ENV: "chainer"})
    proc = _cli("--backend", "chainer", "--out", str(out), env=env)
    assert proc.returncode == 1 and "pip install" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.slow
def test_jax_bare_loop_compiles_its_step_once():
    """The bare JAX loop's timed steps after the first hold no compile: its state starts
    committed to the device, as the step's outputs are. Before, the second call (committed
    carry against the first call's uncommitted one) missed jit's cache and compiled again: a
    timed step of 2-5 s at dcgan64, in the median's steps of an 8-iteration cell."""
    require_backend("jax")
    import logging
    import jax
    from benchmarks.bare import jax as bare_jax

    class Records(logging.Handler):  # JAX's own logger, whatever its propagation
        def __init__(self):
            super().__init__(logging.WARNING)
            self.messages = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    records, logger = Records(), logging.getLogger("jax")
    logger.addHandler(records)
    try:
        with jax.log_compiles(True):
            bare_jax.run(PRESET, BATCH, ITERS, threads=0)
    finally:
        logger.removeHandler(records)
    # "Compiling <name> with global shapes ...": the name is spec_iteration in jax 0.6, a module
    # name (jit_spec_iteration) in newer releases.
    compiles = [m for m in records.messages
                if m.startswith("Compiling") and "spec_iteration" in m.split(" with ")[0]]
    assert len(compiles) == 1, [m[:120] for m in compiles]
