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
import socket
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


# Set by the launcher of a one-command multi-host run (mpiexec --hostfile): only the first host
# runs run_all.py, so only rank 0 writes a run folder; every other process writes its replica's.
ONE_COMMAND_ENV = "DCGAN_BENCH_ONE_COMMAND_HOSTS"


def local_rank() -> int:
    """This process's rank among the replicas on its own host; 0 when not launched. Local rank
    0 writes the run folder of its host (every host's parent has its own); in a one-command
    multi-host run, whose other hosts have no parent, the global rank stands for it."""
    if os.environ.get(ONE_COMMAND_ENV):
        return launcher_rank()
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


def hosts_problem(nodes: int, node_rank: int | None, endpoint: str | None,
                  rank_optional: bool) -> str | None:
    """One line if the multi-host options do not fit together on this host, else None: the
    endpoint's form, the rank's range, and, on node 0 (which hosts the endpoint), that its port
    is free here."""
    if nodes <= 1:
        return ("--node-rank and --rdzv-endpoint apply to --nodes 2 or more"
                if node_rank is not None or endpoint else None)
    if not endpoint:
        return "--nodes needs --rdzv-endpoint HOST:PORT, the same on every host"
    host, _, port = endpoint.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        return f"--rdzv-endpoint {endpoint}: give HOST:PORT, e.g. host0:29500"
    if node_rank is None:
        return None if rank_optional else (f"--nodes {nodes} needs --node-rank, this host's "
                                           f"rank 0 .. {nodes - 1} (0 on {host})")
    if not 0 <= node_rank < nodes:
        return f"--node-rank {node_rank} is out of range for --nodes {nodes}: give 0 .. {nodes - 1}"
    if node_rank == 0:
        return port_problem(host, int(port))
    return None


def hostfile_problem(nodes: int, hostfile: str | None, node_rank: int | None,
                     endpoint: str | None) -> str | None:
    """One line if a one-command multi-host run (mpiexec from a host file) is misconfigured."""
    if nodes <= 1:
        return "--hostfile applies to --nodes 2 or more" if hostfile else None
    if node_rank is not None or endpoint:
        return ("--node-rank and --rdzv-endpoint do not apply to a run started from --hostfile "
                "(one command, on the first host); drop them")
    if not hostfile:
        return f"--nodes {nodes} needs --hostfile FILE, MPI's host file naming the {nodes} hosts"
    try:
        hosts = [line.split("#")[0].strip() for line in Path(hostfile).read_text().splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        return f"--hostfile {hostfile}: cannot read it ({exc.__class__.__name__}); pass a readable file"
    hosts = [h for h in hosts if h]
    if len(hosts) < nodes:
        return (f"--hostfile {hostfile} names {len(hosts)} host(s) and --nodes is {nodes}; name "
                "one host a line, at least --nodes of them")
    return None


def port_problem(host: str, port: int) -> str | None:
    """One line if node 0 cannot host the endpoint here: the port is taken, or HOST is not
    this machine."""
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == 98:  # EADDRINUSE
                return (f"--rdzv-endpoint {host}:{port}: the port is in use on this host "
                        "(node 0 hosts the endpoint); pick a free port, the same on every host")
            return (f"--rdzv-endpoint {host}:{port}: node 0 hosts the endpoint but cannot listen "
                    f"at {host} ({exc.strerror}); run --node-rank 0 on {host}")
    return None
