"""Chainer data parallel: ChainerMN, one MPI process per replica, launched by mpiexec
(common.harness.launch.worker_command); the `naive` communicator (MPI allreduce through mpi4py) on the
CPU, `pure_nccl` on GPUs (untested here: no GPU). Across hosts (--nodes with --hostfile) the same
job, mpiexec starting each host's processes from the host file: nothing here changes.

- Each optimizer is ChainerMN's multi-node optimizer: update() averages the gradients over the
  replicas (multi_node_mean_grad), then runs Adam. Its first update() would only broadcast rank
  0's parameters and skip the step, so that broadcast happens here, before training, and the
  optimizer is told the parameters are already shared: every replica's iteration 0 is a step.
- BN is per replica (statistics over the replica's slice) and so are its running statistics:
  ChainerMN has no buffer broadcast, so each replica's running averages follow its own slices.
  Rank 0's are the ones exported (as with PyTorch DDP, whose rank 0 broadcasts its own).
  sync_bn: ChainerMN's MultiNodeBatchNormalization (models.py), statistics over the global batch
  on the CPU too. Its running variance's unbiasing factor m/(m-1) counts the replica's m, not
  the global batch's: a relative difference of about 1/(2m) in the running-variance update,
  1e-3 at the 4x4 layers with 32 images per replica (m = 512); the losses are unaffected.
- Losses: each replica's batch means, averaged over replicas by one MPI allreduce per fetch.
"""
from __future__ import annotations

import os

import numpy as np

from backends.base import BackendOptions, BackendUnavailable
from backends.chainer import runtime
from backends.compat import prepare_chainer
from common import replicas

chainer = prepare_chainer()


class Replicas:
    """This process's replica: its rank, communicator and what it trains on."""

    def __init__(self, options: BackendOptions, device):
        if not replicas.launched():
            raise BackendUnavailable(
                f"--devices {options.devices}: the chainer backend runs one MPI process per replica "
                "(ChainerMN) and " + ("no mpiexec was found: pip install '.[chainermn]' (mpi4py "
                "and MPICH) or put an MPI's mpiexec on PATH" if replicas.mpiexec() is None else
                "was not started by it: start it through run_all.py, which launches mpiexec"))
        try:
            import chainermn
            from mpi4py import MPI
        except ImportError as exc:
            raise BackendUnavailable(f"--devices {options.devices}: ChainerMN needs mpi4py and an "
                                     f"MPI library ({exc}); pip install '.[chainermn]'") from None
        self._chainermn, self._sum = chainermn, MPI.SUM
        self.communicator = "pure_nccl" if runtime.is_gpu(device) else "naive"
        self.comm = chainermn.create_communicator(self.communicator)
        self.rank, self.world = self.comm.rank, self.comm.size
        self.local_rank, self.local_world = self.comm.intra_rank, self.comm.intra_size
        self._shared = False
        self.sync_bn = options.sync_bn
        self.nodes = options.nodes  # hosts of the host file (MPI's inter_size counts host names)

    def optimizer(self, opt):
        """The multi-node optimizer around `opt` (already set up on its net)."""
        multi = self._chainermn.create_multi_node_optimizer(opt, self.comm)
        multi.is_changed(opt.target)  # parameters already shared (share()): no skipped first step
        return multi

    def share(self, *nets) -> None:
        """Rank 0's parameters to every replica, once, before the first step (they load the same
        canonical weights: a no-op in value, but the engine's guarantee, not the harness's)."""
        if not self._shared:
            for net in nets:
                self.comm.bcast_data(net)
            self._shared = True

    def rows(self, batch_size: int) -> slice:
        return replicas.replica_rows(batch_size, self.world, self.rank)

    def mean_losses(self, loss_d: np.ndarray, loss_g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The global-batch mean losses: the replicas' batch means averaged (slices are equal),
        by one allreduce; each a host array of the fetched steps' losses, or a scalar."""
        losses = self.comm.mpi_comm.allreduce(np.ascontiguousarray(np.stack([loss_d, loss_g])),
                                              op=self._sum) / self.world
        return losses[0], losses[1]

    def info(self) -> dict:
        return {"devices": self.world // self.nodes, "replicas": self.world,
                "nodes": self.nodes, "rank": self.rank,
                "engine": f"chainermn {self.communicator}",
                "batchnorm": "MultiNodeBatchNormalization" if self.sync_bn else "per replica",
                # numpy's BLAS threads, set per replica by the launcher (common.harness.launch)
                "threads_per_replica": int(os.environ.get("OMP_NUM_THREADS") or 0) or None}
