"""PyTorch data parallel: DistributedDataParallel over torch.distributed, one process per replica,
launched by torchrun (common.harness.launch.worker_command); NCCL on GPUs, gloo on the CPU.

- G and D are each wrapped in DDP for the passes whose gradients it averages: G's forward, and
  D's two forwards (real, fake) of the D step, which share one backward. The G step runs the
  plain D (its parameters frozen, as on one device): no D gradient is computed there, so DDP
  would have nothing to reduce and must not see that pass.
- BN is per replica by default (statistics over the replica's slice). The BN running statistics
  rank 0 exports are rank 0's: updated from rank 0's slice only, G's by rank 0's G pass, D's by
  rank 0's three D passes. Each replica keeps its own (broadcast_buffers=False): DDP's default
  copies rank 0's buffers to every replica before each forward, an in-place write to D's
  running statistics between the D step's two forwards that torch 2.11's autograd refuses in
  that step's backward. Rank 0's weights and losses are the same either way (the copy gives
  rank 0 its own values); a replica's diagnosis folder (replicas/rankN) holds its own
  running statistics.
  Exported weights, samples and checkpoints are rank 0's. sync_bn converts every BN to
  torch's SyncBatchNorm (statistics and running averages over the global batch); torch
  implements it for CUDA only, so on the CPU it is refused with that reason.
- Losses: each replica's batch means, averaged over replicas by one all_reduce.
"""
from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from backends.base import BackendOptions, BackendUnavailable
from backends.pytorch import runtime
from common.replicas import replica_rows

# A collective waits at most this long for a peer. Long enough for rank 0's quality probe (FD
# of the fixed-z samples) between two steps; a replica that dies closes its connections, which
# the others see at once, and a hang is ended by the parent's --timeout.
COLLECTIVE_TIMEOUT_S = 300


class Replicas:
    """This process's replica: its rank, device and the DDP-wrapped G and D."""

    def __init__(self, options: BackendOptions, device: torch.device):
        env = os.environ
        if "WORLD_SIZE" not in env:
            raise BackendUnavailable(f"--devices {options.devices}: the pytorch backend runs one "
                                     "process per replica under torchrun; start it through "
                                     "run_all.py, which launches torchrun")
        self.rank, self.world = int(env["RANK"]), int(env["WORLD_SIZE"])
        self.local_rank = int(env.get("LOCAL_RANK", 0))
        self.local_world = int(env.get("LOCAL_WORLD_SIZE", self.world))
        self.sync_bn = options.sync_bn
        if device.type == "cuda":
            if torch.cuda.device_count() < self.local_world:
                raise BackendUnavailable(f"--devices {self.local_world}: torch sees only "
                                         f"{torch.cuda.device_count()} CUDA device(s)")
            self.device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(self.device)
            self.engine_backend = "nccl"
        else:
            if options.sync_bn:
                raise BackendUnavailable("--sync-bn: torch's SyncBatchNorm runs on CUDA devices "
                                         "only; on the CPU BN is per replica (leave --sync-bn off)")
            self.device = device
            self.engine_backend = "gloo"
            # The machine's threads shared out: replicas on one CPU would otherwise oversubscribe.
            runtime.set_threads(max(1, (options.threads or os.cpu_count() or 1) // self.local_world))
        dist.init_process_group(self.engine_backend,
                                timeout=datetime.timedelta(seconds=COLLECTIVE_TIMEOUT_S))

    def wrap(self, G: nn.Module, D: nn.Module) -> tuple[nn.Module, nn.Module]:
        """G and D for the passes DDP reduces; their parameters stay the plain modules'."""
        if self.sync_bn:
            G, D = (nn.SyncBatchNorm.convert_sync_batchnorm(m) for m in (G, D))
        ids = [self.local_rank] if self.device.type == "cuda" else None
        return tuple(DistributedDataParallel(m, device_ids=ids, broadcast_buffers=False) for m in (G, D))

    def rows(self, batch_size: int) -> slice:
        return replica_rows(batch_size, self.world, self.rank)

    def mean_losses(self, loss_d: torch.Tensor, loss_g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The global-batch mean losses: the replicas' batch means averaged (slices are equal)."""
        losses = torch.stack([loss_d, loss_g])
        dist.all_reduce(losses)  # SUM: gloo has no AVG
        losses /= self.world
        return losses[0], losses[1]

    def info(self) -> dict:
        return {"devices": self.local_world, "replicas": self.world,
                "nodes": self.world // self.local_world, "rank": self.rank,
                "engine": f"torch DDP {self.engine_backend}",
                "batchnorm": "SyncBatchNorm" if self.sync_bn else "per replica",
                "threads_per_replica": torch.get_num_threads()}
