"""How a backend's replicas are launched (torchrun, mpiexec around the worker), a non-primary
replica's config, and what a replica that died says: the harness's half of data parallel. The
framework-free half a backend uses too (its rows of a batch, its rank) is common/replicas.py.
"""
from __future__ import annotations

import json
import os
import re
import socket
import sys
import time
from pathlib import Path

import backends
from common.hostlink import LOST_MARK
from common.replicas import ONE_COMMAND_ENV, REPLICA_FILE, mpiexec


def worker_command(backend: str, devices: int, config_path: str, nodes: int = 1,
                   rendezvous: str | None = None, threads: int | None = None,
                   hostfile: str | None = None, python: str | None = None) -> list[str]:
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
        if nodes > 1:  # every host's processes from one command: MPICH's host file, devices a host
            hosts = ["-f", str(hostfile), "-ppn", str(devices), "-genv", ONE_COMMAND_ENV, "1"]
            return [launcher, *hosts, "-n", str(devices * nodes), *share, python, *worker]
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
_HYDRA_BAD_TERMINATION = re.compile(r"BAD TERMINATION.*?PID (\d+) RUNNING AT (\S+).*?EXIT CODE: (\d+)", re.S)
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


# jax.distributed's coordination service, when a host stops sending heartbeats (a lost
# machine, a stopped process), ends every other process with a message naming its task, which
# is the host's node rank: "The following tasks are unhealthy (stopped sending heartbeats):
# /job:jax_worker/replica:0/task:1" (jax 0.6), or "Task /job:.../task:1 heartbeat timeout".
_JAX_TASK = re.compile(r"/job:jax_worker/replica:\d+/task:(\d+)")


def lost_host(stderr_lines: list[str]) -> str | None:
    """Which host(s) a multi-host run lost, from its engine's last words or the hosts' watchdog
    link's (common/hostlink.py: MXNet); None if none is named."""
    for line in stderr_lines:
        if LOST_MARK in line:
            return line.split(LOST_MARK, 1)[1].strip()
    text = "\n".join(stderr_lines)
    ranks = sorted({int(r) for r in _JAX_TASK.findall(text)}) if "heartbeat" in text else []
    if not ranks:
        return None
    named = ", ".join(map(str, ranks))
    return (f"lost host {named} (--node-rank {named}): no heartbeat within --host-timeout; "
            "jax.distributed ended this host's process")


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
        pid, host, code = int(found.group(1)), found.group(2), int(found.group(3))
        signal = _HYDRA_SIGNAL.search(text)
        how = f"killed by signal {signal.group(1)}" if signal else f"exited with status {code}"
        how += f" (on host {host})"  # across hosts (--hostfile): the host it lost
        rank = _rank_of_pid(backend_dir, pid)
        return (-1, f"a replica (pid {pid}) {how}") if rank is None else (rank, f"replica {rank} {how}")
    return None


# ----- several hosts: the harness's own meeting at the endpoint, before the engine's -----
MEET_WAIT_S = 120  # how long a host waits for the others at --rdzv-endpoint (default)


class MeetError(Exception):
    """The hosts did not meet: one line; exit_code 2 where their options differ (usage), 1
    where a host did not come."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def meet(nodes: int, node_rank: int, endpoint: str, settings: dict, wait: float = MEET_WAIT_S
         ) -> dict[int, str]:
    """Every host's address by node rank, once all `nodes` hosts have come to the endpoint
    with the same `settings` (the options that change what is computed): node 0 listens there,
    the others connect, each sends its rank and settings, node 0 answers all alike. Only words
    are exchanged, never a tensor; the engine's own rendezvous at the same port follows (the
    others close first, so node 0's port is left in no TIME_WAIT)."""
    host, port = endpoint.rsplit(":", 1)
    deadline = time.monotonic() + wait
    mine = {"rank": node_rank, "settings": settings}
    if node_rank == 0:
        return _host_meeting(nodes, (host, int(port)), mine, deadline, wait, endpoint)
    return _join_meeting((host, int(port)), mine, deadline, wait, endpoint)


def _send(conn, message: dict) -> None:
    conn.sendall(json.dumps(message).encode() + b"\n")


def _receive(conn) -> dict:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a whole message")
        data += chunk
    return json.loads(data)


def differences(settings: dict[int, dict]) -> list[str]:
    """Each option whose value differs from node 0's, naming the hosts and values."""
    first = settings[0]
    out = []
    for rank in sorted(settings)[1:]:
        for key in sorted(set(first) | set(settings[rank])):
            if first.get(key) != settings[rank].get(key):
                out.append(f"--{key.replace('_', '-')} is {first.get(key)!r} on host 0 but "
                           f"{settings[rank].get(key)!r} on host {rank}")
    return out


def _host_meeting(nodes, address, mine, deadline, wait, endpoint) -> dict[int, str]:
    came: list[tuple] = []  # (rank, connection, address, settings) of each host that came
    problems = []
    with socket.create_server(address) as server:
        while len(came) < nodes - 1:
            server.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                conn, (peer, _) = server.accept()
                conn.settimeout(30)
                theirs = _receive(conn)
            except TimeoutError:
                missing = [r for r in range(1, nodes) if r not in [c[0] for c in came]]
                for _, conn, _, _ in came:
                    _send(conn, {"error": f"host(s) {missing} did not come to {endpoint}"})
                    conn.close()
                raise MeetError(f"--rdzv-endpoint {endpoint}: host(s) {', '.join(map(str, missing))} "
                                f"of --nodes {nodes} did not come within {wait:g} s; start "
                                "run_all.py on every host with the same --rdzv-endpoint") from None
            except (OSError, ValueError):
                continue  # not one of ours (a port scan, a stale client)
            rank = theirs.get("rank")
            if rank == 0 or rank in [c[0] for c in came]:
                problems.append(f"two hosts gave --node-rank {rank}")
            came.append((rank, conn, peer, theirs.get("settings")))
    problems += differences({0: mine["settings"], **{r: c for r, _, _, c in came}})
    hosts = {0: address[0], **{r: peer for r, _, peer, _ in came}}
    answer = {"error": "; ".join(problems)} if problems else {"hosts": hosts}
    for _, conn, _, _ in came:
        with conn:
            _send(conn, answer)
            while conn.recv(1):  # until the other side has closed (TIME_WAIT is theirs)
                pass
    if problems:
        raise MeetError(f"the hosts' options differ: {answer['error']}; run the same command "
                        "on every host but --node-rank and --out", exit_code=2)
    return hosts


def _join_meeting(address, mine, deadline, wait, endpoint) -> dict[int, str]:
    while True:
        try:
            conn = socket.create_connection(address, timeout=max(0.1, min(5, deadline - time.monotonic())))
            break
        except OSError:
            if time.monotonic() > deadline:
                raise MeetError(f"--rdzv-endpoint {endpoint} did not answer within {wait:g} s; "
                                "start --node-rank 0 on that host, or correct HOST:PORT") from None
            time.sleep(0.5)
    with conn:
        conn.settimeout(max(1, deadline - time.monotonic()) + 30)
        _send(conn, mine)
        try:
            answer = _receive(conn)
        except (OSError, ValueError) as exc:
            raise MeetError(f"--rdzv-endpoint {endpoint}: host 0 did not answer ({exc})") from None
    if "error" in answer:
        raise MeetError(f"the hosts did not meet: {answer['error']}; run the same command on "
                        "every host but --node-rank and --out", exit_code=2)
    return {int(r): h for r, h in answer["hosts"].items()}
