"""MXNet data parallel: the Module API over a list of contexts with a kvstore, one process per
host; across hosts the kvstore 'dist_sync' (ps-lite).

- Every module is bound to N contexts (mx.cpu(i) or mx.gpu(i)); Module's executor group splits
  each batch into N contiguous slices, one per context (the slices of common.replicas), runs
  them with per-context BN, and merges outputs back in order. D's input gradient, merged, is
  split the same way for G's backward.
- The kvstore ('local' on CPUs, 'device' on GPUs) sums each gradient over the contexts and hands
  the sum back to every context (update_on_kvstore off); every context then runs the same Adam
  step on the same sum, times rescale_grad = 1/N: the mean of the slices' batch-mean
  gradients, i.e. the global batch's. Update on the kvstore is off because the kvstore would
  keep its own copy of the weights, and canonical weights loaded after binding would not reach it.
- Each context keeps its own BN running statistics (from its own slice); export_weights gives
  context 0's.
- Losses: each context's batch-mean loss, averaged by an NDArray mean over the contexts.
- Several hosts (options.nodes = M > 1): the kvstore is 'dist_sync' ('dist_device_sync' on GPUs,
  untested), one worker per host driving its N contexts; host r trains on its rows of the batch
  (replica_rows over the hosts), which Module splits among its contexts. The kvstore sums each
  gradient over the contexts, and ps-lite's server over the hosts' sums; every worker runs the
  same Adam on that sum with rescale_grad 1/(N·M), so every host's weights stay equal (update on
  the kvstore stays off, as above). The losses: each worker's contexts' mean pushed to a key of
  the same kvstore, pulled summed, divided by M. Each host's context 0 keeps its own BN
  statistics (host 0's are replica 0's).
  The pip wheel has no tools/launch.py: node 0's worker starts ps-lite's scheduler and its one
  server itself, two child processes importing mxnet with DMLC_ROLE=scheduler / server (the
  import runs the role), which die with it on any exit (PR_SET_PDEATHSIG, and killed at its
  exit). Ports: --rdzv-endpoint's port is the harness's meeting, then the hosts' watchdog link
  (common/hostlink.py); the scheduler listens at a free port node 0 picks and sends the others
  over that link (so never the endpoint's), the server and workers at free ports of their own.
  ps-lite does not notice a lost worker (the others wait for its gradients forever, measured),
  so the link ends a host whose peer's process ended or went silent for --host-timeout seconds
  (default HOST_TIMEOUT_S), naming it.
  G and D share one kvstore (ps-lite allows one per process: only the first initialises the
  server's keys); both have a 'bn1_gamma', so each module sees it through NetStore, its keys
  prefixed with its data name.
"""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import socket
import subprocess
import sys

import mxnet as mx

from backends.base import BackendOptions, BackendUnavailable
from backends.mxnet import runtime
from common.hostlink import HostLink, LinkError, free_port
from common.replicas import replica_rows

# Seconds without a word from a host before the others end failed, naming it (--host-timeout).
HOST_TIMEOUT_S = 60
LOSSES = "losses"  # the kvstore key of the hosts' losses (module keys have a "<data name>." prefix)
# A ps-lite role: SIGKILLed when the worker that started it ends (PR_SET_PDEATHSIG = 1), gone at
# once if that happened before; then mxnet's import runs DMLC_ROLE and exits.
ROLE = ("import ctypes, os, sys\n"
        "ctypes.CDLL(None).prctl(1, 9)\n"
        "if os.getppid() != int(sys.argv[1]):\n    sys.exit(0)\n"
        "import backends.mxnet\n")
ROLES = ("scheduler", "server")

_store: mx.kv.KVStore | None = None  # this process's dist kvstore, once it joined the hosts


class Replicas:
    """The N contexts of this process's modules (models.build binds them; Module splits every
    batch among them), and across hosts this host's place among them."""

    def __init__(self, options: BackendOptions, device: mx.Context):
        n = options.devices
        if device.device_type == "gpu":
            if runtime.gpu_count() < n:
                raise BackendUnavailable(f"--devices {n}: mxnet sees only {runtime.gpu_count()} GPU(s)")
            self.contexts = [mx.gpu(i) for i in range(n)]
        else:
            self.contexts = [mx.cpu(i) for i in range(n)]  # logical CPU contexts sharing the cores
        self.nodes, self.node_rank = options.nodes, options.node_rank or 0
        self.link = join(options, self.contexts[0]) if self.nodes > 1 else None

    def rows(self, batch_size: int) -> slice:
        """This host's rows (one host: the whole batch); Module splits them among its contexts."""
        return replica_rows(batch_size, self.nodes, self.node_rank)

    def mean_losses(self, loss_d, loss_g):
        """The contexts' mean already (training.discriminator_backward); across hosts the
        kvstore's sum of the hosts' means, over the hosts."""
        if self.nodes == 1:
            return loss_d, loss_g
        total = mx.nd.zeros((2,), ctx=loss_d.context)  # a new array: pending fetches keep theirs
        _store.push(LOSSES, mx.nd.concat(loss_d, loss_g, dim=0))
        _store.pull(LOSSES, out=total)
        total = total / self.nodes
        return total[0:1], total[1:2]

    def training(self):
        """Around the training loop: the other hosts are told how it ended (common/hostlink.py)."""
        return self.link.training() if self.link else contextlib.nullcontext()

    def info(self) -> dict:
        ctxs = self.contexts
        engine = f"mxnet Module, kvstore {kvstore_type(ctxs)}"
        if self.nodes > 1:
            engine += f" (ps-lite, {self.nodes} workers, 1 server on host 0)"
        return {"devices": len(ctxs), "replicas": len(ctxs) * self.nodes, "nodes": self.nodes,
                "rank": self.node_rank * len(ctxs), "engine": engine, "batchnorm": "per replica",
                "contexts": [str(c) for c in ctxs]}


def kvstore_type(ctxs: list[mx.Context], hosts: bool | None = None) -> str | None:
    """The kvstore of these contexts: across hosts (`hosts`, default: this process joined
    them) the dist one."""
    gpu = ctxs[0].device_type == "gpu"
    if _store is not None if hosts is None else hosts:
        return "dist_device_sync" if gpu else "dist_sync"
    if len(ctxs) == 1:
        return None
    return "device" if gpu else "local"


class NetStore(mx.kv.KVStore):
    """One module's view of the process's one dist kvstore: its keys prefixed (G's and D's
    parameter names overlap; ps-lite's keys are one space)."""

    def __init__(self, store: mx.kv.KVStore, prefix: str):
        super().__init__(store.handle)
        self.store, self.prefix = store, prefix  # the store owns the handle

    def __del__(self):
        pass  # the handle is the store's

    def _keys(self, key):
        return [self.prefix + k for k in key] if isinstance(key, (list, tuple)) else self.prefix + key

    def init(self, key, value):
        super().init(self._keys(key), value)

    def push(self, key, value, priority=0):
        super().push(self._keys(key), value, priority)

    def pull(self, key, out=None, priority=0, ignore_sparse=True):
        super().pull(self._keys(key), out, priority, ignore_sparse)

    def pushpull(self, key, value, out=None, priority=0):
        super().pushpull(self._keys(key), value, out, priority)


@contextlib.contextmanager
def _env(name: str, value: str):
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            del os.environ[name]
        else:
            os.environ[name] = old


def init_optimizer(module: mx.mod.Module, ctxs: list[mx.Context], params: dict) -> None:
    """Module.init_optimizer with the contexts' (and hosts') kvstore, updates on the contexts
    (see above)."""
    hosts = _store.num_workers if _store is not None else 1
    kv = NetStore(_store, module.data_names[0] + ".") if _store is not None else kvstore_type(ctxs)
    params = dict(params, rescale_grad=params["rescale_grad"] / (len(ctxs) * hosts))
    with _env("MXNET_UPDATE_ON_KVSTORE", "0"):  # read by Module.init_optimizer, see above
        module.init_optimizer(kvstore=kv, optimizer="adam", optimizer_params=params)


# ----- joining the hosts -----
def join(options: BackendOptions, context: mx.Context) -> HostLink:
    """The watchdog link to the other hosts, node 0's scheduler and server, and this worker's
    dist kvstore (the module global `_store`), with the losses' key initialised."""
    global _store
    host, _ = options.rdzv_endpoint.rsplit(":", 1)
    root = socket.gethostbyname(host)
    timeout = options.host_timeout or HOST_TIMEOUT_S
    wait = max(timeout, 120.0)  # for the others' workers to start (data, import)
    roles: list[subprocess.Popen] = []
    hello = None
    if options.node_rank == 0:
        port = free_port()
        roles = [start_role(role, dmlc(root, port, options.nodes, root)) for role in ROLES]
        hello = {"ps_port": port}

    def stop_roles():
        for proc in roles:
            if proc.poll() is None:
                proc.kill()
    try:
        link = HostLink(options.nodes, options.node_rank, options.rdzv_endpoint, timeout, wait, hello)
    except LinkError as exc:
        stop_roles()
        raise BackendUnavailable(f"--nodes {options.nodes}: {exc}") from None
    link.cleanups.append(stop_roles)
    for role, proc in zip(ROLES, roles):
        link.watch(f"ps-lite {role}", proc)
    atexit.register(leave, link, stop_roles, wait)
    os.environ.update(dmlc(root, link.hello["ps_port"], options.nodes, link.address), DMLC_ROLE="worker")
    _store = mx.kv.create(kvstore_type([context], hosts=True))
    # No barrier of every host at the kvstore's end: a host that left would hang the others
    # there; node 0 keeps the server until every host has ended instead (leave). The C API's
    # switch has no Python method in 1.9.1.
    mx.base.check_call(mx.base._LIB.MXKVStoreSetBarrierBeforeExit(_store.handle, ctypes.c_int(0)))
    _store.init(LOSSES, mx.nd.zeros((2,), ctx=context))
    return link


def dmlc(root: str, port: int, nodes: int, node_host: str) -> dict[str, str]:
    """ps-lite's settings: the scheduler at root:port, one server, `nodes` workers, and the
    address the others reach this process at."""
    return {"DMLC_PS_ROOT_URI": root, "DMLC_PS_ROOT_PORT": str(port), "DMLC_NUM_SERVER": "1",
            "DMLC_NUM_WORKER": str(nodes), "DMLC_NODE_HOST": node_host}


def start_role(role: str, env: dict[str, str]) -> subprocess.Popen:
    """A ps-lite role in a child process, in its own session (a terminal's Ctrl-C is the
    worker's to handle); it dies with this process (ROLE)."""
    return subprocess.Popen([sys.executable, "-c", ROLE, str(os.getpid())], stdin=subprocess.DEVNULL,
                            env=dict(os.environ, **env, DMLC_ROLE=role), start_new_session=True)


def leave(link: HostLink, stop_roles, limit: float) -> None:
    """At this worker's exit: the link's leave (node 0 keeps the server until every other host
    has ended), then the roles ended."""
    link.leave(limit)
    stop_roles()
