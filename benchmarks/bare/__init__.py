"""Bare reference loops: SPEC.md's iteration written plainly in each framework, with no harness.

A bare loop is what a careful user would write to time one training step by hand: G and D built
by the backend's own `models.py` (provably the same networks) from the same canonical weights,
the framework's plainest idiomatic step (G once; D on real and on fake in separate passes, one
Adam step; G's step through the updated D on the same G(z)), ONE fixed synthetic batch and z
placed on the device as framework tensors before timing, and a timer per step that stops after
the losses are fetched and the device is synchronised. tests/backends/test_bare_loops.py proves each
computes exactly what its backend's `train_step` computes.

It is not a training run: no data pipeline or per-step host->device copy, no noise stream, no
logging, progress bar, divergence check, callbacks, Keras `fit` or Chainer Trainer. Set beside
run_all.py's step time, the difference is the harness's and the backend's loop overhead.

One module per framework, each with the same `run(preset, batch, iters, threads, device="cpu",
init_weights=None) -> dict` (threads 0 leaves the framework's setting as it is; init_weights None
starts from the shared initialisation of seed 0), named as its backend in the registry
(backends.NAMES); `python -m benchmarks.bare` runs one of them in its own process.
"""
