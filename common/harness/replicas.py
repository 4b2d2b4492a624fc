"""Data-parallel runs, the framework-free half: how a backend's replicas are launched, which rows
of the harness batch each replica trains on, and what a replica that died says.

Every backend trains data-parallel with its framework's own engine (backends/<fw>/parallel.py);
this module never exchanges a gradient. The global batch and the data order stay the spec's:
each of N replicas takes one contiguous slice of the same harness batch, so a run at N devices
is comparable with the one-device run of the same global batch (per-replica BN aside).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

from common import atomic

# Backends whose engine runs one process per replica, and the launcher that starts them. The
# others (TensorFlow MirroredStrategy, MXNet Module over a list of contexts) drive every device
# from one process.
PROCESS_PER_REPLICA = {"pytorch": "torchrun", "chainer": "mpiexec"}
# Those whose launch across hosts run_all.py drives (--nodes): torchrun's rendezvous needs only
# an address. mpiexec across hosts needs a host file and ssh: docs/data-parallel.md shows it.
MULTI_HOST = ("pytorch",)

# Rank of this process within a launched job (torchrun sets RANK; Open MPI's mpiexec
# OMPI_COMM_WORLD_RANK; MPICH's PMI_RANK), and within its own host (torchrun LOCAL_RANK; Open MPI
# OMPI_COMM_WORLD_LOCAL_RANK; MPICH MPI_LOCALRANKID).
_RANK_ENV = ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK")
_LOCAL_RANK_ENV = ("LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID")


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


def launched() -> bool:
    """Whether this process is one replica of a launched multi-process job."""
    return any(os.environ.get(name) for name in ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE"))


def launcher_rank() -> int:
    """This process's rank in a launched multi-process job; 0 when not launched."""
    return _env_int(_RANK_ENV)


def local_rank() -> int:
    """This process's rank among the replicas on its own host; 0 when not launched. Local rank
    0 writes the run folder of its host (every host's parent has its own)."""
    return _env_int(_LOCAL_RANK_ENV)


def mpiexec() -> str | None:
    """The MPI launcher: the one installed beside this Python (the chainermn extra's MPICH
    wheel puts it in the venv's bin), else the first on PATH; None without MPI."""
    beside = Path(sys.executable).with_name("mpiexec")
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def worker_command(backend: str, devices: int, config_path: str, nodes: int = 1,
                   rendezvous: str | None = None, threads: int | None = None) -> list[str]:
    """The command line that runs one backend's worker: the worker itself, or, for engines with
    one process per replica and several replicas, the engine's launcher around it. `threads`:
    the CPU threads of the whole run, shared out among the replicas of one host."""
    worker = ["-m", "common.harness.worker", config_path]
    if devices <= 1 and nodes <= 1 or backend not in PROCESS_PER_REPLICA:
        return [sys.executable, *worker]
    if PROCESS_PER_REPLICA[backend] == "mpiexec":
        launcher = mpiexec()
        if launcher is None:  # the worker then says what to install (BackendUnavailable)
            return [sys.executable, *worker]
        # numpy's BLAS reads OMP_NUM_THREADS at import: each replica's share, set before it starts
        # (torch replicas set theirs at run time instead).
        share = ["-genv", "OMP_NUM_THREADS", str(max(1, (threads or os.cpu_count() or 1) // devices))]
        return [launcher, "-n", str(devices), *share, sys.executable, *worker]
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
# MPICH's mpiexec (hydra) names the first process that failed by its pid, not its rank:
# "BAD TERMINATION OF ONE OF YOUR APPLICATION PROCESSES\n=   PID 3124 RUNNING AT vm\n=   EXIT
# CODE: 9 ... EXIT STRING: Killed (signal 9)"; each replica records its pid (record_replica).
_HYDRA_BAD_TERMINATION = re.compile(r"BAD TERMINATION.*?PID (\d+) RUNNING AT.*?EXIT CODE: (\d+)", re.S)
_HYDRA_SIGNAL = re.compile(r"EXIT STRING: .*\(signal (\d+)\)")
REPLICA_FILE = "replica.json"


def record_replica(out_dir) -> None:
    """A launched replica's rank and pid in its folder, so the launcher's report of a pid that
    failed can name the replica."""
    atomic.write_json(Path(out_dir, REPLICA_FILE), {"rank": launcher_rank(), "pid": os.getpid()})


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
