"""Bare JAX loop: the spec's iteration as one jitted pure function over the split NNX state,
nothing around it.

In JAX the plain idiom *is* the backend's step: one pure function of (state, batch) under
jax.jit, the state donated (backends/jax/training.py spec_iteration, called here rather than
restated). What the bare loop leaves out is everything around it: no harness batches (one
fixed batch placed on the device before timing), no noise stream, no loss log or checkpoints,
no module/carry bookkeeping of the Backend class."""
from __future__ import annotations

import functools

from benchmarks.bare import loop
from common.spec import model_spec


def run(preset: str, batch: int, iters: int, threads: int, device: str = "cpu",
        init_weights: dict | None = None, bf16: bool = False) -> dict:
    from backends.jax import models, runtime, training, weights
    jax, nnx = training.jax, training.nnx

    loop.check_sizes(batch, iters)
    spec = model_spec(preset)
    runtime.set_threads(threads or None)  # pins the CPUs before XLA starts; 0 leaves them
    dev = runtime.select_device(device)  # the backend's device settings (full float32 on a GPU)

    G, D = models.build(spec, dtype=jax.numpy.bfloat16 if bf16 else None)
    weights.from_canonical({"G": G, "D": D}, loop.starting_weights(spec, init_weights))
    tx = training.adam(G, spec.adam)  # D's too: Optax binds to no net
    split = [nnx.split(net, nnx.Param, nnx.BatchStat) for net in (G, D)]
    state = {"G": tuple(split[0][1:]), "D": tuple(split[1][1:]),
             "opt": {"G": tx.init(split[0][1]), "D": tx.init(split[1][1])}}
    # Committed to the device as the step's outputs are: with the state uncommitted, the second
    # call (committed carry) missed jit's cache and compiled again, a timed step of 2-5 s
    # (measured: JAX_LOG_COMPILES=1 showed two compiles of spec_iteration).
    state = jax.device_put(state, dev)
    step_fn = jax.jit(functools.partial(training.spec_iteration, (split[0][0], split[1][0]), tx, spec),
                      donate_argnums=0)
    real, z = (jax.device_put(x, dev) for x in loop.fixed_batch(spec, batch))

    def step():
        nonlocal state
        state, losses = step_fn(state, real, z)
        return losses

    result = loop.timed_steps(step, loop.synced_floats(runtime, dev), iters)
    return loop.report(result, runtime, dev)


if __name__ == "__main__":
    import benchmarks
    raise SystemExit(benchmarks.internal_entry("benchmarks.bare.jax", "JAX's bare reference loop", "benchmarks.bare -h"))
