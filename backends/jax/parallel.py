"""JAX data parallel: the jitted iteration under shard_map over a jax.sharding Mesh of N devices
in this one process (N GPUs, or on the CPU N XLA host devices made by
--xla_force_host_platform_device_count, runtime.set_host_devices).

- The carry (weights, BN statistics, Adam state) is replicated (PartitionSpec()); the harness
  batch is split along its rows, so replica r trains on rows r·B/N .. (r+1)·B/N, the slice
  common.replicas.replica_rows gives it.
- Gradients and losses are averaged by lax.pmean over the mesh axis inside the step: the
  engine's all-reduce, which XLA schedules with the rest of the step.
- BN is per replica by default: each replica normalises over its own slice and updates its
  own running statistics; the carry keeps replica 0's (as DDP's broadcast of rank 0's buffers
  does). options.sync_bn gives BN the mesh axis (Flax's BatchNorm axis_name): statistics, and so
  the running averages, over the global batch.
- Multi-host (options.nodes > 1): jax.distributed.initialize(coordinator at --rdzv-endpoint,
  node 0 hosting it; process id --node-rank) before the first array, CPU collectives by gloo
  (jax 0.6 has none by default); the Mesh spans every host's devices (jax.devices()). The
  backend keeps its carry on this process's first device, as on one host; each step makes it
  a global replicated array again (no copy for one device per host), gives the mesh this
  host's rows of the batch (replica_rows over the hosts), and hands back this host's copy of
  the new carry and losses. A host that stops answering for --host-timeout seconds (default
  HOST_TIMEOUT_S) makes jax.distributed end the others' processes with a message naming its
  task (its node rank), which the harness turns into the reason (common/harness/launch.py).
"""
from __future__ import annotations

import re

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from backends.base import BackendOptions, BackendUnavailable
from common.replicas import replica_rows

AXIS = "replica"
# Seconds without a heartbeat from a host before jax.distributed ends the run (its own default
# is 100: 10 missed beats of 10 s); beats every second, so a lost host is found within this.
HOST_TIMEOUT_S = 60

try:  # jax >= 0.7: jax.shard_map (check_vma); before: jax.experimental's (check_rep)
    from jax import shard_map as _shard_map
    _UNCHECKED = {"check_vma": False}
except ImportError:
    from jax.experimental.shard_map import shard_map as _shard_map
    _UNCHECKED = {"check_rep": False}


class Replicas:
    """The mesh of this process's N devices, and the shard_map'ed step over it."""

    def __init__(self, options: BackendOptions, device):
        self.nodes, self.node_rank = options.nodes, options.node_rank or 0  # initialize()d
        devices = jax.local_devices(backend=device.platform)
        if len(devices) < options.devices:
            raise BackendUnavailable(f"--devices {options.devices}: JAX sees {len(devices)} "
                                     f"{device.platform} device(s)")
        self.devices = devices[:options.devices]  # this host's
        everyone = (self.devices if self.nodes == 1 else
                    [d for d in jax.devices(device.platform) if d.process_index != jax.process_index()
                     or d in self.devices])
        self.world = len(everyone)
        if self.world != options.devices * self.nodes:
            raise BackendUnavailable(f"--devices {options.devices} --nodes {self.nodes}: the hosts "
                                     f"gave {self.world} devices in all; every host needs "
                                     f"--devices {options.devices}")
        self.mesh = Mesh(np.array(everyone), (AXIS,))
        self.sync_bn = options.sync_bn
        self.bn_axis = AXIS if options.sync_bn else None

    def step(self, iteration):
        """The iteration jitted over the mesh, the carry donated: (carry, real, z) -> (carry, losses)."""
        def replica(carry, real, z):
            new, losses = iteration(carry, real, z, axis=AXIS)
            # Per-replica BN statistics differ: keep replica 0's (replicated out of the map).
            first = lambda t: jax.lax.all_gather(t, AXIS)[0]
            new["G"] = (new["G"][0], jax.tree.map(first, new["G"][1]))
            new["D"] = (new["D"][0], jax.tree.map(first, new["D"][1]))
            return new, losses

        mapped = _shard_map(replica, mesh=self.mesh, in_specs=(P(), P(AXIS), P(AXIS)),
                            out_specs=(P(), P()), **_UNCHECKED)
        jitted = jax.jit(mapped, donate_argnums=0)
        if self.nodes == 1:
            return jitted
        whole, split = NamedSharding(self.mesh, P()), NamedSharding(self.mesh, P(AXIS))

        def across_hosts(carry, real, z):
            rows = self.rows(real.shape[0])
            carry = jax.tree.map(lambda a: jax.make_array_from_single_device_arrays(
                a.shape, whole, [jax.device_put(a, d) for d in self.devices]), carry)
            real, z = (jax.make_array_from_process_local_data(split, np.asarray(a)[rows]) for a in (real, z))
            new, losses = jitted(carry, real, z)
            try:  # waited for here, so that a lost host is reported as one
                losses = losses.addressable_data(0).block_until_ready()
            except Exception as exc:  # XlaRuntimeError: a peer's connection closed mid-collective
                raise RuntimeError(self.lost(exc)) from exc
            return self.local(new), losses
        return across_hosts

    def lost(self, exc) -> str:
        """The reason a collective failed, naming the host(s) it waited for."""
        others = [r for r in range(self.nodes) if r != self.node_rank]
        who = (f"host {others[0]} (--node-rank {others[0]})" if len(others) == 1
               else f"a host of node ranks {', '.join(map(str, others))}")
        first = str(exc).splitlines()[0]
        peer = re.search(r"\[([^\]]+)\]:(\d+): (.*)", first)
        how = f"{peer.group(3)} at {peer.group(1)}:{peer.group(2)}" if peer else first[:200]
        return f"lost {who} mid-step: the gloo collective failed ({how}); this is host {self.node_rank}"

    def local(self, tree):
        """This host's copy of a replicated global pytree, on its first device."""
        return jax.tree.map(lambda a: a.addressable_data(0), tree)

    def place(self, tree):
        """A pytree replicated over the mesh (across hosts: on this host's first device; the
        step makes it global)."""
        if self.nodes > 1:
            return jax.device_put(tree, self.devices[0])
        return jax.device_put(tree, NamedSharding(self.mesh, P()))

    def first(self, tree):
        """Replica 0's copy of a replicated pytree (evaluation runs on one device)."""
        return jax.device_put(tree, self.devices[0])

    def rows(self, batch_size: int) -> slice:
        """This process drives every replica of its host: one host takes the whole batch, each
        of several its hosts' slice (the mesh splits it among its devices)."""
        return replica_rows(batch_size, self.nodes, self.node_rank)

    def mean_losses(self, loss_d, loss_g):
        """The losses are the engine's pmean already."""
        return loss_d, loss_g

    def info(self) -> dict:
        engine = f"jax shard_map, Mesh({self.world} {self.devices[0].platform})"
        return {"devices": len(self.devices), "replicas": self.world, "nodes": self.nodes,
                "rank": self.node_rank * len(self.devices),
                "engine": engine + (", jax.distributed (gloo)" if self.nodes > 1 else ""),
                "batchnorm": "synchronised (axis_name)" if self.sync_bn else "per replica"}


def initialize(options: BackendOptions) -> None:
    """jax.distributed across options.nodes hosts, before the first array: node 0 hosts the
    coordinator at the endpoint, every host a process id (its node rank)."""
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # jax 0.6: none by default
    timeout = max(1, round(options.host_timeout or HOST_TIMEOUT_S))
    # The heartbeat settings are in jax.distributed's state only (jax 0.6's initialize passes
    # its defaults, 10 beats of 10 s): one beat a second, `timeout` missed end the run.
    from jax._src import distributed
    beats = {"service_heartbeat_interval_seconds": 1, "service_max_missing_heartbeats": timeout,
             "client_heartbeat_interval_seconds": 1, "client_max_missing_heartbeats": timeout}
    try:
        distributed.global_state.initialize(options.rdzv_endpoint, options.nodes, options.node_rank,
                                            initialization_timeout=max(timeout, 120), **beats)
    except Exception as exc:  # XlaRuntimeError: the coordinator unreachable
        raise BackendUnavailable(f"--rdzv-endpoint {options.rdzv_endpoint}: jax.distributed did not "
                                 f"start within {max(timeout, 120)} s ({str(exc).splitlines()[0][:200]})") from exc
