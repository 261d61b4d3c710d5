"""Multi-process training with torchrun: which rank this is, and the few collective calls we need.

``torchrun --nproc_per_node=N -m nmt.cli.train ...`` sets RANK / WORLD_SIZE / LOCAL_RANK; the
process group uses NCCL on GPUs and gloo on CPUs. Without those variables everything here is a
no-op, so single-process code paths stay plain.

Two rules keep it working past one process on a CPU:

- Every tensor a collective sees lives on ``Dist.device``, the training device: NCCL takes only
  CUDA tensors, so a figure built on the CPU and all-reduced would stop a GPU run at its first
  log line. (Object collectives pickle to a tensor on the current CUDA device, which
  ``init_distributed`` sets to this rank's GPU.)
- Work that rank 0 does alone (preparing the data, a validation, writing checkpoints) can take
  longer than the process group's timeout (NCCL's watchdog kills a collective after 10 minutes by
  default). The other ranks wait for it in ``wait_for_main``: a barrier on a side group of gloo
  (CPU) with its own long timeout (``train.wait_timeout_min``), after which the main group's
  collectives find every rank ready. A rank that dies closes its gloo connections, so the others
  stop at once rather than after that timeout.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as dist

from nmt.runtime import resolve_device

log = logging.getLogger(__name__)


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))  # the training device
    patient: object | None = None  # the gloo group ``wait_for_main`` waits in (world > 1)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def wait_for_main(self) -> None:
        """Every rank leaves when rank 0 gets here: rank 0 calls it when its own work is done, the
        others at once, so that they wait without a collective that could time out."""
        if self.world > 1:
            dist.barrier(group=self.patient)

    def any_rank(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is True on any rank (stop decisions)."""
        if self.world == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def broadcast(self, value: float) -> float:
        """Rank 0's ``value`` on every rank (a validation's verdict)."""
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.broadcast(t, src=0)
        return float(t.item())

    def gather(self, obj: object) -> list | None:
        """Every rank's ``obj`` (plain data and CPU tensors), in rank order, on rank 0 (None elsewhere)."""
        if self.world == 1:
            return [obj]
        out: list | None = [None] * self.world if self.main else None
        dist.gather_object(obj, out, dst=0, group=self.patient)  # pickled on the CPU: gloo
        return out

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of ``values`` over all processes (log figures)."""
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def init_distributed(device: str, timeout_s: float, wait_timeout_s: float) -> Dist:
    """The process group torchrun asked for (none for one process) and this rank's training device.

    ``timeout_s``: how long a collective may wait for the other ranks; ``wait_timeout_s``: how long
    they wait for rank 0's own work (``Dist.wait_for_main``)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(device=resolve_device(device))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        if dev.index != local_rank:
            log.warning(
                "device=%s with %d processes: process %d trains on cuda:%d", device, world, rank, local_rank
            )
            dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    patient = dist.new_group(backend="gloo", timeout=timedelta(seconds=wait_timeout_s))
    return Dist(rank, world, local_rank, dev, patient)
