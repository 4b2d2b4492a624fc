"""run_all.py and the benchmarks as a user runs them: real subprocesses, real files."""
