"""The run harness: child processes and their launchers, the worker, step log, checkpoints, resume."""
