"""Framework-free parts of dcgan-bench: spec, data, noise, weights, timing, reporting.

Nothing here imports a deep-learning framework: every backend and the harness import it."""
