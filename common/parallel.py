"""Data-parallel runs, the framework-free half: how a backend's replicas are launched, which rows
of the harness batch each replica trains on, and what a replica that died says.

Every backend trains data-parallel with its framework's own engine (backends/<fw>/parallel.py);
this module never exchanges a gradient. The global batch and the data order stay the spec's:
each of N replicas takes one contiguous slice of the same harness batch, so a run at N devices
is comparable with the one-device run of the same global batch (per-replica BN aside).
"""
from __future__ import annotations

import os
import re
import sys

# Backends whose engine runs one process per replica, and the launcher that starts them. The
# others (TensorFlow MirroredStrategy, MXNet Module over a list of contexts) drive every device
# from one process.
PROCESS_PER_REPLICA = {"pytorch": "torchrun"}

# Rank of this process within a launched job (torchrun sets RANK; mpirun OMPI_COMM_WORLD_RANK),
# and within its own host (torchrun LOCAL_RANK; mpirun OMPI_COMM_WORLD_LOCAL_RANK).
_RANK_ENV = ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK")
_LOCAL_RANK_ENV = ("LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK")


def check_batch(batch_size: int, replicas: int) -> None:
    """The global batch must split evenly: unequal slices would weight the replicas' mean losses
    unequally and change the computation (ValueError naming the fix)."""
    if replicas < 1:
        raise ValueError(f"--devices must be positive, got {replicas}")
    if batch_size % replicas:
        raise ValueError(f"--batch-size {batch_size} does not split evenly over --devices "
                         f"{replicas}; pass a batch size that is a multiple of {replicas}")


def replica_rows(batch_size: int, replicas: int, rank: int) -> slice:
    """Rows of the harness batch that replica `rank` trains on: rank·B/N .. (rank+1)·B/N."""
    check_batch(batch_size, replicas)
    per = batch_size // replicas
    return slice(rank * per, (rank + 1) * per)


def _env_int(names) -> int:
    for name in names:
        if os.environ.get(name):
            return int(os.environ[name])
    return 0


def launcher_rank() -> int:
    """This process's rank in a launched multi-process job; 0 when not launched."""
    return _env_int(_RANK_ENV)


def local_rank() -> int:
    """This process's rank among the replicas on its own host; 0 when not launched. Local rank
    0 writes the run folder of its host (every host's parent has its own)."""
    return _env_int(_LOCAL_RANK_ENV)


def worker_command(backend: str, devices: int, config_path: str, nodes: int = 1,
                   rendezvous: str | None = None) -> list[str]:
    """The command line that runs one backend's worker: the worker itself, or, for engines with
    one process per replica and several replicas, the engine's launcher around it."""
    worker = ["-m", "backends.worker", config_path]
    if devices <= 1 and nodes <= 1 or backend not in PROCESS_PER_REPLICA:
        return [sys.executable, *worker]
    # torchrun: one process per device; --standalone picks a free local port for one machine;
    # several hosts meet at the rendezvous endpoint (c10d, hosted by the host whose address it
    # names), which assigns the ranks.
    hosts = (["--standalone"] if nodes <= 1 else
             [f"--nnodes={nodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={rendezvous}",
              "--rdzv-id=dcgan-bench"])
    return [sys.executable, "-m", "torch.distributed.run", *hosts,
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


def first_failure(stderr_lines: list[str]) -> tuple[int, str] | None:
    """(rank, what happened) of the replica that failed first, from the launcher's summary; the
    others' errors (a peer's lost connection) follow from it. None if there is no summary."""
    found = _TORCHRUN_ROOT_CAUSE.search("\n".join(stderr_lines))
    if not found:
        return None
    rank, code = int(found.group(1)), int(found.group(2))
    how = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
    return rank, f"replica {rank} {how}"
