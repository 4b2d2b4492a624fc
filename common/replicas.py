"""Data-parallel runs, the framework-free half a backend and the harness share: which rows of
the harness batch each replica trains on, and which replica of a launched job this process is.

Every backend trains data-parallel with its framework's own engine (backends/<fw>/parallel.py);
this module never exchanges a gradient. The global batch and the data order stay the spec's:
each of N replicas takes one contiguous slice of the same harness batch, so a run at N devices
is comparable with the one-device run of the same global batch (per-replica BN aside). How the
replicas are launched is the harness's (common/harness/launch.py).
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from common import atomic

# Rank of this process within a launched job (torchrun sets RANK; Open MPI's mpiexec
# OMPI_COMM_WORLD_RANK; MPICH's PMI_RANK), and within its own host (torchrun LOCAL_RANK; Open MPI
# OMPI_COMM_WORLD_LOCAL_RANK; MPICH MPI_LOCALRANKID).
RANK_ENV = ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK")
LOCAL_RANK_ENV = ("LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID")


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


def env_int(names) -> int:
    for name in names:
        if os.environ.get(name):
            return int(os.environ[name])
    return 0


def launched() -> bool:
    """Whether this process is one replica of a launched multi-process job."""
    return any(os.environ.get(name) for name in ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE"))


def launcher_rank() -> int:
    """This process's rank in a launched multi-process job; 0 when not launched."""
    return env_int(RANK_ENV)


def local_rank() -> int:
    """This process's rank among the replicas on its own host; 0 when not launched. Local rank
    0 writes the run folder of its host (every host's parent has its own)."""
    return env_int(LOCAL_RANK_ENV)


def mpiexec(python: str | None = None) -> str | None:
    """The MPI launcher: the one installed beside `python` (default this one: the chainermn
    extra's MPICH wheel puts it in the venv's bin), else the first on PATH; None without MPI."""
    beside = Path(python or sys.executable).with_name("mpiexec")
    return str(beside) if beside.exists() else shutil.which("mpiexec")


REPLICA_FILE = "replica.json"  # a launched replica's rank and pid (record_replica)


def record_replica(out_dir) -> None:
    """A launched replica's rank and pid in its folder, so the launcher's report of a pid that
    failed can name the replica."""
    atomic.write_json(Path(out_dir, REPLICA_FILE), {"rank": launcher_rank(), "pid": os.getpid()})
