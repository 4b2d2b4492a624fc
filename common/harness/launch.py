"""How a backend's replicas are launched (torchrun, mpiexec around the worker), a non-primary
replica's config, and what a replica that died says: the harness's half of data parallel. The
framework-free half a backend uses too (its rows of a batch, its rank) is common/replicas.py.
"""
from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import backends
from common.replicas import REPLICA_FILE, mpiexec


def worker_command(backend: str, devices: int, config_path: str, nodes: int = 1,
                   rendezvous: str | None = None, threads: int | None = None,
                   python: str | None = None) -> list[str]:
    """The command line that runs one backend's worker: the worker itself, or, for engines with
    one process per replica and several replicas, the engine's launcher around it. `threads`:
    the CPU threads of the whole run, shared out among the replicas of one host. `python`: the
    interpreter of the backend's environment (default this one); its launcher is that
    environment's (torchrun as its `python -m torch.distributed.run`, mpiexec beside it)."""
    python = python or sys.executable
    worker = ["-m", "common.harness.worker", config_path]
    launcher = backends.REGISTRY[backend].launcher
    if devices <= 1 and nodes <= 1 or launcher is None:
        return [python, *worker]
    if launcher == "mpiexec":
        launcher = mpiexec(python)
        if launcher is None:  # the worker then says what to install (BackendUnavailable)
            return [python, *worker]
        # numpy's BLAS reads OMP_NUM_THREADS at import: each replica's share, set before it starts
        # (torch replicas set theirs at run time instead).
        share = ["-genv", "OMP_NUM_THREADS", str(max(1, (threads or os.cpu_count() or 1) // devices))]
        return [launcher, "-n", str(devices), *share, python, *worker]
    # torchrun: one process per device; --standalone picks a free local port for one machine;
    # several hosts meet at the rendezvous endpoint (c10d, hosted by the host whose address it
    # names), which assigns the ranks.
    hosts = (["--standalone"] if nodes <= 1 else
             [f"--nnodes={nodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={rendezvous}",
              "--rdzv-id=dcgan-bench"])
    return [python, "-m", "torch.distributed.run", *hosts,
            f"--nproc-per-node={devices}", "--max-restarts=0", *worker]


def replica_config(config: dict, rank: int) -> dict:
    """A non-primary replica's config: its own folder under the backend's (result, losses and a
    log for diagnosis), no progress bar and no quality probes; rank 0 writes the run's files."""
    out = os.path.join(config["out_dir"], "replicas", f"rank{rank}")
    return dict(config, out_dir=out, quiet=True, quality=None)


# torchrun's summary of a failed job ends with its first failure: "Root Cause (first observed
# failure):\n[0]:\n  time : ...\n  rank : 1 (local_rank: 1)\n  exitcode : -9 (pid: 123)".
_TORCHRUN_ROOT_CAUSE = re.compile(r"Root Cause.*?rank\s*:\s*(\d+)\s*\(local_rank:\s*\d+\)\s*"
                                  r"exitcode\s*:\s*(-?\d+)", re.S)
# MPICH's mpiexec (hydra) names the first process that failed by its pid, not its rank:
# "BAD TERMINATION OF ONE OF YOUR APPLICATION PROCESSES\n=   PID 3124 RUNNING AT vm\n=   EXIT
# CODE: 9 ... EXIT STRING: Killed (signal 9)"; each replica records its pid (record_replica).
_HYDRA_BAD_TERMINATION = re.compile(r"BAD TERMINATION.*?PID (\d+) RUNNING AT.*?EXIT CODE: (\d+)", re.S)
_HYDRA_SIGNAL = re.compile(r"EXIT STRING: .*\(signal (\d+)\)")
def _rank_of_pid(backend_dir, pid: int) -> int | None:
    if backend_dir is None:
        return None
    for path in [Path(backend_dir, REPLICA_FILE), *Path(backend_dir).glob(f"replicas/*/{REPLICA_FILE}")]:
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if info.get("pid") == pid:
            return info.get("rank")
    return None


def first_failure(stderr_lines: list[str], backend_dir=None) -> tuple[int, str] | None:
    """(rank, what happened) of the replica that failed first, from the launcher's summary; the
    others' errors (a peer's lost connection) follow from it. None if there is no summary; rank
    -1 where the launcher names a pid that no replica of `backend_dir` recorded."""
    text = "\n".join(stderr_lines)
    if found := _TORCHRUN_ROOT_CAUSE.search(text):
        rank, code = int(found.group(1)), int(found.group(2))
        how = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
        return rank, f"replica {rank} {how}"
    if found := _HYDRA_BAD_TERMINATION.search(text):
        pid, code = int(found.group(1)), int(found.group(2))
        signal = _HYDRA_SIGNAL.search(text)
        how = f"killed by signal {signal.group(1)}" if signal else f"exited with status {code}"
        rank = _rank_of_pid(backend_dir, pid)
        return (-1, f"a replica (pid {pid}) {how}") if rank is None else (rank, f"replica {rank} {how}")
    return None
