"""Multi-process training with torchrun: which rank this is, and the few collective calls we need.

``torchrun --nproc_per_node=N -m nmt.cli.train ...`` sets RANK / WORLD_SIZE / LOCAL_RANK; the
process group uses NCCL on GPUs and gloo on CPUs. Without those variables everything here is a
no-op, so single-process code paths stay plain.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def any_rank(self, flag: bool, device: torch.device) -> bool:
        """True on every rank if ``flag`` is True on any rank (stop decisions)."""
        if self.world == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def broadcast(self, value: float) -> float:
        """Rank 0's ``value`` on every rank (a validation's verdict)."""
        if self.world == 1:
            return value
        obj = [value]
        dist.broadcast_object_list(obj, src=0)
        return obj[0]

    def gather(self, obj: object) -> list | None:
        """Every rank's ``obj``, in rank order, on rank 0 (None elsewhere)."""
        if self.world == 1:
            return [obj]
        out: list = [None] * self.world
        dist.all_gather_object(out, obj)
        return out if self.main else None

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of ``values`` over all processes (log figures)."""
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t)
        return t.tolist()

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def init_distributed(use_cuda: bool) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Dist(rank, world, local_rank)
