"""TensorFlow data parallel: tf.distribute.MirroredStrategy in one process, Keras's fit; across
hosts MultiWorkerMirroredStrategy, one process per host, in a loop of the backend's own.

- Replicas: N GPUs, or on a CPU N logical CPU devices (tf.config.set_logical_device_configuration,
  which must come before TF's runtime starts: the worker's fresh process).
- G, D, their optimizers and the GAN are built in the strategy's scope (mirrored variables);
  fit distributes the harness's dataset, splitting each global batch into N contiguous
  per-replica batches in order (replica 0 the first rows), and runs GAN.train_step per replica.
- Gradients: Keras 3's optimizer all-reduces them by SUM across replicas, so each replica's
  batch-mean loss is divided by N before its gradient (GAN.replicas): the mean of the replicas'
  gradients, the global batch's. The losses fit reports are the replicas' batch means averaged
  by the strategy (Keras's "auto" reduction is MEAN).
- BN is per replica (Keras's synchronized=False). Its moving statistics are MirroredVariables
  with aggregation "none": each replica keeps and updates its own copy from its own slice
  (measured: replica 0's G.bn0 moving mean after one step equals one device's after a step on
  rows 0..B/2 alone, replica 1's the other half's); export_weights reads replica 0's.
- Several hosts (options.nodes = M > 1): MultiWorkerMirroredStrategy (MWMS), one worker per
  host, its collectives a gRPC ring on CPUs (TF's choice, NCCL, on GPUs). Keras 3's fit does not run under MWMS (measured; Keras'
  author: not supported, docs/data-parallel.md), so the backend's own loop calls the same
  GAN.train_step's iteration, spec_iteration, through strategy.run per step (`step`), with
  host r's rows of the batch (replica_rows over the hosts; on GPUs split among its N devices),
  and the losses reduced by MEAN over every replica. The gradients, BN and losses are as above:
  measured, 2 loopback hosts x 1 CPU give bit for bit the one-host 2-replica losses and weights.
  TF_CONFIG needs every worker's address and port before the strategy exists: each host picks a
  free port and tells node 0 over the hosts' watchdog link (common/hostlink.py), node 0 answers
  every host with the cluster (its own port, every host's address as it sees it); the link also
  ends a host whose peer's process ended or went silent for --host-timeout seconds (default
  HOST_TIMEOUT_S), naming it, where a collective might wait for the lost peer.
  On CPUs one replica per host (MWMS puts one on a worker's CPU); on GPUs the first --devices
  GPUs (untested: no multi-GPU host here).
"""
from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import re
import socket

import tensorflow as tf
from tensorflow.python.eager import context  # the coordination service's settings (below)

from backends.base import BackendOptions, BackendUnavailable
from common.hostlink import HostLink, LinkError, free_port
from common.replicas import replica_rows

# Seconds without a word from a host before the others end failed, naming it (--host-timeout).
HOST_TIMEOUT_S = 60


class Replicas:
    """The strategy's replicas: one host's, all in this process (fit splits each batch among
    them), or across hosts this host's among every host's."""

    def __init__(self, options: BackendOptions, device: str):
        self.nodes, self.node_rank = options.nodes, options.node_rank or 0
        self.link = join(options) if self.nodes > 1 else None
        self.strategy = (_strategy(options.devices, device) if self.nodes == 1
                         else _multi_worker(options.devices, device, self.nodes, self.link.timeout))
        self.devices = options.devices
        self.collectives = "NCCL or ring, TF's choice" if device.startswith("/GPU") else "gRPC ring"

    def scope(self):
        return self.strategy.scope()

    def rows(self, batch_size: int) -> slice:
        """This process's rows: one host's the whole batch (split by fit), else this host's."""
        return replica_rows(batch_size, self.nodes, self.node_rank)

    def mean_losses(self, loss_d, loss_g):
        return loss_d, loss_g  # already the replicas' mean (fit's MEAN reduction, or step's)

    def step(self, iteration, jit_compile: bool):
        """Across hosts: iteration(real, z) -> (loss_d, loss_g) per replica under strategy.run,
        fed this host's rows (split among its replicas in order), the losses stacked as the
        MEAN over every replica of every host."""
        strategy, n = self.strategy, self.devices
        first = self.node_rank * n  # this host's first replica's id in the sync group
        per_replica = tf.function(iteration, jit_compile=jit_compile, reduce_retracing=True)

        @tf.function(reduce_retracing=True)
        def replicated(real, z):
            losses = strategy.run(per_replica, args=(real, z))
            return tf.stack([strategy.reduce(tf.distribute.ReduceOp.MEAN, x, axis=None) for x in losses])

        def step(real, z):
            mine = self.rows(real.shape[0])
            parts = [replica_rows(mine.stop - mine.start, n, i) for i in range(n)]
            shard = lambda a: strategy.experimental_distribute_values_from_function(
                lambda ctx: tf.constant(a[mine][parts[ctx.replica_id_in_sync_group - first]]))
            return replicated(shard(real), shard(z))
        return step

    def training(self):
        """Around the training loop: across hosts the others are told how it ended."""
        return self.link.training() if self.link else contextlib.nullcontext()

    def lost(self, exc: Exception) -> str:
        """The reason a step's collective failed, naming the host(s) TensorFlow names (its
        coordination service: "tasks are unhealthy (stopped sending heartbeats): .../task:1")."""
        text = str(exc)
        ranks = sorted({int(t) for t in re.findall(r"/job:worker/(?:replica:\d+/)?task:(\d+)", text)}
                       - {self.node_rank})
        who = ", ".join(f"host {r} (--node-rank {r})" for r in ranks) or "another host"
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        how = next((line for line in lines if "unhealthy" in line or "heartbeat" in line), lines[0] if lines else "")
        return f"lost {who} mid-step: TensorFlow's collective failed ({how[:200]}); this is host {self.node_rank}"

    def info(self) -> dict:
        n = self.strategy.num_replicas_in_sync
        info = {"devices": self.devices, "replicas": n, "nodes": self.nodes, "batchnorm": "per replica",
                "replica_devices": list(self.strategy.extended.worker_devices)}
        if self.nodes == 1:
            return {**info, "engine": "tf MirroredStrategy"}
        return {**info, "rank": self.node_rank * self.devices,
                "engine": f"tf MultiWorkerMirroredStrategy ({self.collectives}, {self.nodes} workers)"}


def _strategy(n: int, device: str) -> tf.distribute.MirroredStrategy:
    if device.startswith("/GPU"):
        gpus = tf.config.list_logical_devices("GPU")
        if len(gpus) < n:
            raise BackendUnavailable(f"--devices {n}: TensorFlow sees only {len(gpus)} GPU(s)")
        return tf.distribute.MirroredStrategy([g.name for g in gpus[:n]])
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError as exc:  # TF's runtime already started in this process
        raise BackendUnavailable(f"--devices {n}: TensorFlow's runtime started before its "
                                 f"{n} logical CPU devices could be made") from exc
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")][:n]
    # One process, no NCCL on CPUs: gradients are summed on one device and copied back.
    return tf.distribute.MirroredStrategy(cpus, cross_device_ops=tf.distribute.ReductionToOneDevice())


def _multi_worker(n: int, device: str, nodes: int, timeout: float) -> tf.distribute.MultiWorkerMirroredStrategy:
    """MWMS over the cluster in TF_CONFIG (join), this worker's replicas: its first n GPUs, or
    its CPU (one replica); TF's coordination service ends the step of a host whose peer sent no
    heartbeat for `timeout` s."""
    if device.startswith("/GPU"):
        gpus = tf.config.list_physical_devices("GPU")
        if len(gpus) < n:
            raise BackendUnavailable(f"--devices {n}: TensorFlow sees only {len(gpus)} GPU(s)")
        tf.config.set_visible_devices(gpus[:n], "GPU")
    elif n > 1:
        raise BackendUnavailable(f"--devices {n} --nodes: TensorFlow's MultiWorkerMirroredStrategy "
                                 "trains one replica on a host's CPU; pass --devices 1")
    # MWMS configures the coordination service itself, with TF's default heartbeat timeout (10 s),
    # only where none is: configured here, it follows --host-timeout.
    context.context().configure_coordination_service(
        service_type="standalone", service_leader="/job:worker/replica:0/task:0",
        heartbeat_timeout_in_ms=int(timeout * 1000),
        coordinated_jobs=[context.coordination_config_pb2.CoordinatedJob(name="worker", num_tasks=nodes)])
    ways = tf.distribute.experimental.CommunicationImplementation
    how = tf.distribute.experimental.CommunicationOptions(
        implementation=ways.AUTO if device.startswith("/GPU") else ways.RING)
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=how)


def join(options: BackendOptions) -> HostLink:
    """The watchdog link to the other hosts, over which node 0 gathers every worker's address
    and port into the cluster; TF_CONFIG set from it (before the strategy exists)."""
    host, _ = options.rdzv_endpoint.rsplit(":", 1)
    timeout = options.host_timeout or HOST_TIMEOUT_S
    wait = max(timeout, 120.0)  # for the others' workers to start (data, import)
    port, root = free_port(), socket.gethostbyname(host)

    def cluster(peers: dict[int, dict]) -> dict:
        return {"workers": [f"{root}:{port}", *(f"{peers[r]['address']}:{peers[r]['port']}"
                                                 for r in range(1, options.nodes))]}
    try:
        link = HostLink(options.nodes, options.node_rank, options.rdzv_endpoint, timeout, wait,
                        hello=cluster if options.node_rank == 0 else None, words={"port": port})
    except LinkError as exc:
        raise BackendUnavailable(f"--nodes {options.nodes}: {exc}") from None
    atexit.register(functools.partial(link.leave, wait))
    os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": link.hello["workers"]},
                                          "task": {"type": "worker", "index": options.node_rank}})
    return link
