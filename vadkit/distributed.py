"""torch.distributed under `torchrun`: the process group, rank-0 duties, global-batch BatchNorm.

vadkit has no launcher of its own. When `torchrun` starts it (`WORLD_SIZE` > 1), `Distributed`
joins the process group (NCCL on GPUs, Gloo on CPUs) and destroys it again on `close()` — a Gloo
group still alive at interpreter exit can abort a process that finished its work (SIGABRT,
pytorch/pytorch#179291). Extraction uses it only to print one combined summary; training uses it
for DistributedDataParallel, with `sync_batch_norm` so BatchNorm sees the global batch.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class Distributed:
    """The process group when launched by `torchrun`, else a single process (rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(
        cls, device: torch.device | None = None, *, timeout: datetime.timedelta | None = None
    ) -> Distributed:
        """Join torchrun's group (creating it unless the caller already did)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1 or "RANK" not in os.environ:
            return cls()
        rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        owns = False
        if not dist.is_initialized():
            backend = "nccl" if device is not None and device.type == "cuda" else "gloo"
            kwargs = {"timeout": timeout} if timeout is not None else {}
            dist.init_process_group(backend, **kwargs)
            owns = True
        return cls(rank, world, local, owns)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def gather(self, obj: object) -> list[object] | None:
        """Every rank's `obj` on rank 0 (None elsewhere); `[obj]` in a single process."""
        if not self.enabled:
            return [obj]
        out: list[object] | None = [None] * self.world if self.main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def close(self) -> None:
        """Destroy the group this process created (never one the caller made)."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self.owns_group = False


class GlobalBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d whose training statistics are those of the global batch over all ranks.

    torch's SyncBatchNorm runs on GPUs only; this one all-reduces (differentiably) the per-channel
    sums over any process group, so DDP on CPU (Gloo) trains like one process with the global
    batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        c = x.shape[1]
        dims = [0, *range(2, x.dim())]
        local = torch.cat([x.sum(dims), (x * x).sum(dims), x.new_tensor([x.numel() / c])])
        total = all_reduce(local)  # (2c + 1,), summed over ranks
        count = total[-1]
        mean = total[:c] / count
        var = total[c : 2 * c] / count - mean * mean  # biased, as BatchNorm normalises
        with torch.no_grad():
            self.num_batches_tracked += 1
            m = self.momentum
            self.running_mean.mul_(1 - m).add_(m * mean)
            self.running_var.mul_(1 - m).add_(m * var * count / (count - 1))
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def sync_batch_norm(module: nn.Module, device: torch.device) -> nn.Module:
    """Make every BatchNorm use global-batch statistics (keeps parameters and buffers)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm1d:
            new = GlobalBatchNorm(child.num_features, eps=child.eps, momentum=child.momentum)
            new.weight, new.bias = child.weight, child.bias
            new.running_mean, new.running_var = child.running_mean, child.running_var
            new.num_batches_tracked = child.num_batches_tracked
            new.train(child.training)
            setattr(module, name, new)
        else:
            sync_batch_norm(child, device)
    return module


__all__ = ["Distributed", "GlobalBatchNorm", "sync_batch_norm"]
