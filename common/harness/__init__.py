"""The run harness: child processes, the worker, step log, timing, checkpoints, resume, replicas."""
