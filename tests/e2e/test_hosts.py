"""Several hosts (--nodes), simulated on one machine as process groups on the loopback address
with free ports: the hosts' meeting at the endpoint (common/harness/launch.py), and JAX
(jax.distributed), MXNet (the dist_sync kvstore), TensorFlow (MultiWorkerMirroredStrategy) and
Chainer (mpiexec) across 2 hosts against
the one-host 2-replica run; a killed host ends the other failed, naming it. Only 127.0.0.1 is
contacted."""
from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from common import replicas
from common.harness import launch
from common.harness.worker import FAULT_ENV
from tests.support.backends import IN_CI, require_backend
from tests.support.processes import REPO, offline
from tests.support.tolerances import FIRST5_ATOL, FORWARD_ATOL

SETTINGS = {"batch_size": 16, "preset": "mnist32", "seed": 0, "iters": 5}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _meet_all(settings_by_rank: dict[int, dict], wait: float = 20):
    """Each rank's meet() in a thread: {rank: hosts or MeetError}."""
    endpoint, results = f"127.0.0.1:{free_port()}", {}

    def one(rank):
        try:
            results[rank] = launch.meet(len(settings_by_rank), rank, endpoint, settings_by_rank[rank], wait)
        except launch.MeetError as exc:
            results[rank] = exc
    threads = [threading.Thread(target=one, args=(r,)) for r in settings_by_rank]
    for t in threads:
        t.start()
    for t in threads:
        t.join(wait + 40)
    return results


# ----- the meeting (no framework) -----
def test_hosts_with_the_same_options_meet_and_learn_every_address():
    results = _meet_all({r: SETTINGS for r in range(3)})
    assert all(results[r] == {0: "127.0.0.1", 1: "127.0.0.1", 2: "127.0.0.1"} for r in range(3)), results


def test_options_that_differ_are_refused_on_every_host_naming_them():
    results = _meet_all({0: SETTINGS, 1: dict(SETTINGS, batch_size=32)})
    for exc in results.values():
        assert isinstance(exc, launch.MeetError) and exc.exit_code == 2
        assert "--batch-size is 16 on host 0 but 32 on host 1" in str(exc) and "\n" not in str(exc)


def test_a_silent_endpoint_ends_in_one_line_within_the_wait():
    t0 = time.monotonic()
    with pytest.raises(launch.MeetError) as exc:
        launch.meet(2, 1, f"127.0.0.1:{free_port()}", SETTINGS, wait=2)
    assert time.monotonic() - t0 < 10 and exc.value.exit_code == 1
    assert "did not answer within 2 s" in str(exc.value)
    with pytest.raises(launch.MeetError, match="host\\(s\\) 1 of --nodes 2 did not come within 1 s"):
        launch.meet(2, 0, f"127.0.0.1:{free_port()}", SETTINGS, wait=1)


def test_two_hosts_of_one_rank_are_refused():
    endpoint, out = f"127.0.0.1:{free_port()}", []
    threads = [threading.Thread(target=lambda: out.append(_try(launch.meet, 3, 1, endpoint, SETTINGS, 20)))
               for _ in range(2)]
    for t in threads:
        t.start()
    assert isinstance(_try(launch.meet, 3, 0, endpoint, SETTINGS, 20), launch.MeetError)
    for t in threads:
        t.join(60)
    assert all(isinstance(e, launch.MeetError) and "two hosts gave --node-rank 1" in str(e) for e in out)


def _try(fn, *args):
    try:
        return fn(*args)
    except launch.MeetError as exc:
        return exc


# ----- JAX across 2 loopback hosts -----
def _losses(path) -> np.ndarray:
    with open(path) as rows:
        return np.array([(float(r["loss_d"]), float(r["loss_g"])) for r in csv.DictReader(rows)])


def _hosts(tmp_path, port, extra=(), env_of=lambda rank: {}, backend="jax"):
    common = ["--backend", backend, "--dataset", "synthetic", "--iters", "5", "--batch-size", "16",
              "--quality-every", "0", "--quiet", "--no-figures", "--timeout", "300",
              "--nodes", "2", "--rdzv-endpoint", f"127.0.0.1:{port}", *extra]
    return [subprocess.Popen([sys.executable, str(REPO / "run_all.py"), *common, "--node-rank", str(r),
                              "--out", str(tmp_path / f"host{r}")], cwd=REPO,
                             env=dict(os.environ, **offline(tmp_path), **env_of(r)),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for r in (0, 1)]


def _one_host(tmp_path, backend, extra=()):
    return subprocess.Popen([sys.executable, str(REPO / "run_all.py"), "--backend", backend, "--dataset",
                             "synthetic", "--iters", "5", "--batch-size", "16", "--devices", "2", *extra,
                             "--quality-every", "0", "--quiet", "--no-figures", "--out", str(tmp_path / "one")],
                            cwd=REPO, env=dict(os.environ, **offline(tmp_path)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
@pytest.mark.parametrize("backend,one_threads,host_threads", [
    ("jax", (), ()), ("pytorch", ("--threads", "2"), ("--threads", "1"))])
def test_two_gloo_hosts_compute_the_one_host_two_replica_run(tmp_path, backend, one_threads, host_threads):
    """2 hosts x 1 device equal 1 host x 2 devices: the same per-replica BN over the same rows
    (the replica of global rank r feeds rows r*B/2 ..), the same gloo mean (JAX: jax.distributed;
    PyTorch: DDP, whose c10d rendezvous assigns the ranks, so which host is rank 0 is its
    choice). Iteration 0's loss_D within FORWARD_ATOL, the 5 iterations within the CLI rule's
    floor FIRST5_ATOL (tests/support/tolerances.py); measured: equal bit for bit, both (the same
    program, the same reduction of 2 gradients). PyTorch's replicas get one CPU thread each in
    both layouts: its convolutions sum in another order on another thread count, which alone
    moved a loss by 1.7e-3 over 5 iterations (measured: 2 threads a host against 1 a replica).
    JAX's are left at the default: so they are equal (with 1 thread a host, 1.7e-3 apart)."""
    require_backend(backend)
    one = _one_host(tmp_path, backend, one_threads)
    hosts = _hosts(tmp_path, free_port(), host_threads, backend=backend)
    for proc in (*hosts, one):
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
    runs = [json.loads((tmp_path / f"host{r}" / "results.json").read_text())["backends"][backend] for r in (0, 1)]
    assert sorted(r["parallel"]["rank"] for r in runs) == [0, 1]
    assert all(r["parallel"]["replicas"] == r["parallel"]["nodes"] == 2 for r in runs)
    single = _losses(tmp_path / "one" / "backends" / backend / "losses.csv")
    for r in (0, 1):
        got = _losses(tmp_path / f"host{r}" / "backends" / backend / "losses.csv")
        assert got.shape == single.shape == (5, 2)
        print(f"host {r} vs one host: iteration 0 loss_D {abs(got[0, 0] - single[0, 0]):.1e}, "
              f"5 iterations {np.abs(got - single).max():.1e}")
        assert abs(got[0, 0] - single[0, 0]) <= FORWARD_ATOL
        assert np.abs(got - single).max() <= FIRST5_ATOL


@pytest.mark.slow
def test_a_killed_jax_host_ends_the_other_failed_naming_it(tmp_path):
    """Host 1's worker is killed after iteration 1: host 0's next collective fails at once
    (the connection resets), and its run ends failed with a reason naming host 1, well within
    --host-timeout (15 s here; 60 s by default) after host 1 ended."""
    require_backend("jax")
    hosts = _hosts(tmp_path, free_port(), ["--host-timeout", "15", "--iters", "50"],
                   env_of=lambda r: {FAULT_ENV: "jax:kill@1"} if r == 1 else {})
    ended = {}
    for r, proc in sorted(enumerate(hosts), reverse=True):
        proc.communicate(timeout=600)
        ended[r] = time.monotonic()
    assert ended[0] - ended[1] < 60  # the other host ended, not waited out --timeout (300 s)
    r0 = json.loads((tmp_path / "host0" / "results.json").read_text())["backends"]["jax"]
    assert hosts[0].returncode == 1 and r0["status"] == "failed", r0
    assert "lost host 1 (--node-rank 1)" in r0["reason"], r0["reason"]


def test_a_host_without_heartbeats_is_named_from_jax_distributed_last_words():
    """A stopped host (SIGSTOP: alive, silent) ends the others through jax.distributed's
    heartbeats, which abort their processes (signal 6) with these lines (jax 0.6.2, measured);
    the harness names the host from them (the run ended 12 s after a SIGSTOP at
    --host-timeout 15)."""
    tail = [("2026-12-07 07:13:59.184697: E external/xla/xla/tsl/distributed_runtime/coordination/"
             "coordination_service.cc:1839] Use error polling to propagate the following error to all "
             "tasks: UNAVAILABLE: The following tasks are unhealthy (stopped sending heartbeats):"),
            "/job:jax_worker/replica:0/task:1",
            "The tasks have crashed. Check the task logs for an earlier error."]
    assert launch.lost_host(tail).startswith("lost host 1 (--node-rank 1): no heartbeat")
    assert launch.lost_host(["/job:jax_worker/replica:0/task:1 Connection reset"]) is None


# ----- MXNet and TensorFlow across 2 loopback hosts, each host's worker on the hosts' link -----
# MXNet: the dist_sync kvstore, node 0 starting ps-lite's roles; TensorFlow:
# MultiWorkerMirroredStrategy, its cluster gathered over the link.
LINKED = {"mxnet": "dist_sync", "tensorflow": "MultiWorkerMirroredStrategy"}
def _mark() -> str:
    """An environment entry no other process has: the test's hosts and all they start inherit it."""
    return f"DCGAN_BENCH_TEST_MARK={uuid.uuid4().hex}"


def _alive_with(mark: str, wait: float = 5) -> list[int]:
    """The pids of the processes whose environment holds `mark` (a test's hosts and every
    process they started, ps-lite's scheduler and server included) after at most `wait` s
    (a SIGKILL on a parent's death is delivered at once, the process's end takes a moment)."""
    deadline = time.monotonic() + wait
    while True:
        pids = []
        for environ in Path("/proc").glob("[0-9]*/environ"):
            try:
                if mark.encode() in environ.read_bytes():
                    pids.append(int(environ.parent.name))
            except OSError:
                continue
        if not pids or time.monotonic() > deadline:
            return pids
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.parametrize("backend", LINKED)
def test_two_linked_hosts_compute_the_one_host_two_replica_run(tmp_path, backend):
    """2 hosts x 1 replica equal 1 host x 2 replicas, each with per-replica BN over the same rows.
    MXNet: dist_sync's server sums the 2 workers' gradients, kvstore local the same 2 slices'
    (a + b in either order is exact in float32); the losses are the kvstore's sum over the hosts
    / 2 against the mean over the contexts. TensorFlow: MWMS's ring all-reduce against
    MirroredStrategy's sum on one device, the same 2 gradients; both MEAN the 2 replicas' losses.
    Bounds as for JAX above; measured: equal bit for bit, both. Each host writes its own run
    folder; no process (ps-lite's roles) outlives the run."""
    require_backend(backend)
    mark = _mark()
    one = _one_host(tmp_path, backend)
    hosts = _hosts(tmp_path, free_port(), backend=backend,
                   env_of=lambda r: dict([mark.split("=")]))
    for proc in (*hosts, one):
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
    runs = [json.loads((tmp_path / f"host{r}" / "results.json").read_text())["backends"][backend] for r in (0, 1)]
    assert [r["parallel"]["rank"] for r in runs] == [0, 1]
    assert all(r["parallel"]["replicas"] == r["parallel"]["nodes"] == 2 for r in runs)
    assert all(LINKED[backend] in r["parallel"]["engine"] for r in runs)
    single = _losses(tmp_path / "one" / "backends" / backend / "losses.csv")
    for r in (0, 1):
        got = _losses(tmp_path / f"host{r}" / "backends" / backend / "losses.csv")
        assert got.shape == single.shape == (5, 2)
        print(f"host {r} vs one host: iteration 0 loss_D {abs(got[0, 0] - single[0, 0]):.1e}, "
              f"5 iterations {np.abs(got - single).max():.1e}")
        assert abs(got[0, 0] - single[0, 0]) <= FORWARD_ATOL
        assert np.abs(got - single).max() <= FIRST5_ATOL
    assert not _alive_with(mark)


@pytest.mark.slow
@pytest.mark.parametrize("backend", LINKED)
def test_a_killed_linked_host_ends_the_other_failed_naming_it(tmp_path, backend):
    """Host 1's worker is killed after iteration 1: ps-lite itself would leave host 0 waiting
    for its gradients forever; the hosts' link (common/hostlink.py) closes at once, and host 0
    ends failed naming host 1, well within --host-timeout (15 s here; 60 s by default), MXNet's
    ps-lite scheduler and server gone with it (measured: 0.2 s after host 1, TensorFlow)."""
    require_backend(backend)
    mark = _mark()
    hosts = _hosts(tmp_path, free_port(), ["--host-timeout", "15", "--iters", "50"], backend=backend,
                   env_of=lambda r: dict([mark.split("=")], **({FAULT_ENV: f"{backend}:kill@1"} if r == 1 else {})))
    ended = {}
    for r, proc in sorted(enumerate(hosts), reverse=True):
        proc.communicate(timeout=600)
        ended[r] = time.monotonic()
    print(f"host 0 ended {ended[0] - ended[1]:.1f} s after host 1")
    assert ended[0] - ended[1] < 15  # the link, not --host-timeout's silence nor --timeout (300 s)
    r0 = json.loads((tmp_path / "host0" / "results.json").read_text())["backends"][backend]
    assert hosts[0].returncode == 1 and r0["status"] == "failed", r0
    assert r0["reason"].startswith("lost host 1 (--node-rank 1): its link closed"), r0["reason"]
    assert not _alive_with(mark)


# ----- Chainer across 2 loopback hosts: one mpiexec command from a host file -----
def _require_mpi():
    require_backend("chainer")
    if replicas.mpiexec() is None:
        reason = "chainer: no mpiexec for ChainerMN; pip install '.[chainermn]'"
        pytest.fail(f"CI=true: {reason}", pytrace=False) if IN_CI else pytest.skip(reason)


def _chainer(tmp_path, name, *args, env=None):
    (tmp_path / "hosts").write_text("127.0.0.1\nlocalhost\n")  # two names: MPICH starts both here
    return subprocess.run([sys.executable, str(REPO / "run_all.py"), "--backend", "chainer",
                           "--dataset", "synthetic", "--batch-size", "16", "--quality-every", "0",
                           "--quiet", "--no-figures", "--timeout", "120", "--out", str(tmp_path / name), *args],
                          cwd=REPO, env=dict(os.environ, **offline(tmp_path), **(env or {})),
                          capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.slow
def test_two_chainer_hosts_compute_the_one_host_two_replica_run(tmp_path):
    """ChainerMN from a host file of 2 hosts x 1 process against 1 host x 2 processes: the same
    MPI job but for where its processes run, so the same numbers (bounds as for JAX above;
    measured: equal bit for bit); only rank 0 writes the run folder, rank 1 its replica's."""
    _require_mpi()
    two = _chainer(tmp_path, "two", "--iters", "5", "--nodes", "2", "--hostfile", str(tmp_path / "hosts"))
    assert two.returncode == 0, two.stderr[-2000:]
    one = _chainer(tmp_path, "one", "--iters", "5", "--devices", "2")
    assert one.returncode == 0, one.stderr[-2000:]
    r = json.loads((tmp_path / "two" / "results.json").read_text())["backends"]["chainer"]
    assert (r["parallel"]["nodes"], r["parallel"]["replicas"], r["parallel"]["devices"]) == (2, 2, 1)
    assert (tmp_path / "two" / "backends" / "chainer" / "replicas" / "rank1" / "losses.csv").exists()
    got, single = (_losses(tmp_path / d / "backends" / "chainer" / "losses.csv") for d in ("two", "one"))
    assert got.shape == single.shape == (5, 2)
    assert abs(got[0, 0] - single[0, 0]) <= FORWARD_ATOL
    assert np.abs(got - single).max() <= FIRST5_ATOL


@pytest.mark.slow
def test_a_killed_chainer_host_ends_the_run_failed_naming_it(tmp_path):
    """Host 2's process (rank 1) killed after iteration 1: mpiexec stops the job at once and
    names the host it ran at; the run ends failed within seconds (measured 5 s in all)."""
    _require_mpi()
    t0 = time.monotonic()
    proc = _chainer(tmp_path, "kill", "--iters", "50", "--nodes", "2", "--hostfile", str(tmp_path / "hosts"),
                    env={FAULT_ENV: "chainer:kill@1/1"})
    assert time.monotonic() - t0 < 120 and proc.returncode == 1, proc.stderr[-2000:]
    r = json.loads((tmp_path / "kill" / "results.json").read_text())["backends"]["chainer"]
    assert r["status"] == "failed" and "(on host localhost)" in r["reason"], r["reason"]
