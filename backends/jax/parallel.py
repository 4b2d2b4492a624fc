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
- Multi-host: jax.distributed.initialize() in each host's process before the first array, then
  the same Mesh over jax.devices() (every host's); docs/data-parallel.md. Not driven by
  run_all.py's --nodes in this version.
"""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from backends.base import BackendOptions, BackendUnavailable

AXIS = "replica"

try:  # jax >= 0.7: jax.shard_map (check_vma); before: jax.experimental's (check_rep)
    from jax import shard_map as _shard_map
    _UNCHECKED = {"check_vma": False}
except ImportError:
    from jax.experimental.shard_map import shard_map as _shard_map
    _UNCHECKED = {"check_rep": False}


class Replicas:
    """The mesh of this process's N devices, and the shard_map'ed step over it."""

    def __init__(self, options: BackendOptions, device):
        if options.nodes > 1:
            raise BackendUnavailable(f"--nodes {options.nodes}: the jax backend runs one host; "
                                     "multi-host JAX is jax.distributed (docs/data-parallel.md)")
        devices = jax.devices(device.platform)
        self.world = options.devices
        if len(devices) < self.world:
            raise BackendUnavailable(f"--devices {self.world}: JAX sees {len(devices)} "
                                     f"{device.platform} device(s)")
        self.devices = devices[:self.world]
        self.mesh = Mesh(np.array(self.devices), (AXIS,))
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
        return jax.jit(mapped, donate_argnums=0)

    def place(self, tree):
        """A pytree replicated over the mesh."""
        return jax.device_put(tree, NamedSharding(self.mesh, P()))

    def first(self, tree):
        """Replica 0's copy of a replicated pytree (evaluation runs on one device)."""
        return jax.device_put(tree, self.devices[0])

    def rows(self, batch_size: int) -> slice:
        """This process drives every replica: it takes the whole batch (the mesh splits it)."""
        return slice(0, batch_size)

    def mean_losses(self, loss_d, loss_g):
        """The losses are the engine's pmean already."""
        return loss_d, loss_g

    def info(self) -> dict:
        return {"devices": self.world, "replicas": self.world, "nodes": 1, "rank": 0,
                "engine": f"jax shard_map, Mesh({self.world} {self.devices[0].platform})",
                "batchnorm": "synchronised (axis_name)" if self.sync_bn else "per replica"}
