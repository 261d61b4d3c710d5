"""Everything a resume needs besides the weights and the optimizer, in one object saved and
restored whole: the counters (step, epoch, position in the epoch, best score, time, tokens), the
learning-rate schedule, the loss scaler, the log meter and every random generator.

The batch order of epoch ``e`` is drawn from a generator seeded by ``(seed, e)`` alone
(``epoch_generator``), so no generator state has to be carried from one epoch to the next: a
run stopped at the end of an epoch, or anywhere in one, resumes with the same order as a run that
never stopped. The generator that differs between processes (PyTorch's, for dropout) is saved per
process (``rank_state``) and gathered by rank 0 into the checkpoint.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, fields

import numpy as np
import torch

from nmt.training.optim import LRSchedule
from nmt.training.progress import Meter

log = logging.getLogger(__name__)


def epoch_generator(seed: int, epoch: int) -> np.random.Generator:
    """The generator that orders epoch ``epoch`` (1-based) of a run seeded with ``seed``."""
    return np.random.default_rng([seed, epoch])


@dataclass
class TrainState:
    """A training run's resumable state. The counters are plain fields; ``schedule`` and
    ``scaler`` are the trainer's own objects, saved and loaded through this one."""

    schedule: LRSchedule
    scaler: torch.amp.GradScaler
    meter: Meter = field(default_factory=Meter)  # this process's figures since the last log line
    step: int = 0  # updates done
    epoch: int = 0  # epochs started
    batch_in_epoch: int = 0  # batches of the current epoch consumed (0: the next epoch starts)
    best_metric: float = -math.inf  # dev BLEU (or -dev NLL without BLEU)
    best_step: int = 0
    bad_validations: int = 0
    last_valid_step: int = -1
    train_seconds: float = 0.0  # wall clock over all sessions, validations included
    tokens: int = 0  # target tokens trained on
    stop_reason: str = field(default="", metadata={"saved": False})  # this session's

    OBJECTS = ("schedule", "scaler", "meter")

    def counters(self) -> dict:
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in self.OBJECTS and f.metadata.get("saved", True)
        }

    def state_dict(self, ranks: list[dict]) -> dict:
        """The whole state; ``ranks``: every process's ``rank_state()``, in rank order."""
        return {
            **self.counters(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ranks": ranks,
        }

    def load_state_dict(self, state: dict, rank: int, world: int, seed: int, device: torch.device) -> None:
        """Restore everything ``state_dict`` saved, this process's generator and meter included."""
        for name in self.counters():
            setattr(self, name, state[name])
        self.stop_reason = ""
        self.schedule.load_state_dict(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])
        ranks = state["ranks"]
        if len(ranks) != world:
            log.warning(
                "resuming with %d processes, saved with %d: dropout streams re-seeded (the run goes on, "
                "but not exactly as it would have)",
                world,
                len(ranks),
            )
            torch.manual_seed(seed + 7919 * self.step + rank)
            self.meter = Meter()
            return
        mine = ranks[rank]
        torch.set_rng_state(mine["rng"]["torch"])
        if device.type == "cuda" and mine["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(mine["rng"]["cuda"], device)
        self.meter = Meter.from_state(mine["meter"])

    def rank_state(self, device: torch.device) -> dict:
        """What differs between processes: the random state (CPU, and the GPU's if it trains on
        one) and the log figures gathered since the last log line (plain data and CPU tensors)."""
        rng = {"torch": torch.get_rng_state()}
        if device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(device)
        return {"rng": rng, "meter": self.meter.state()}


def upgrade(ckpt: dict) -> dict:
    """The ``state`` of a ``last.pt`` from nmt before the state object (counters, with the
    schedule, scaler and ranks beside them) in today's form."""
    old = ckpt["state"]
    if "schedule" in old:
        return old
    if old.get("batch_in_epoch"):
        log.warning(
            "last.pt was written by an older nmt in the middle of epoch %d: the rest of that epoch is "
            "drawn in a new order",
            old.get("epoch"),
        )
    ranks = ckpt.get("ranks") or [{"rng": ckpt["rng"], "meter": Meter().state()}]
    ranks = [{"rng": r.get("rng", r), "meter": r.get("meter", Meter().state())} for r in ranks]
    return {
        **{k: v for k, v in old.items() if k not in ("epoch_rng", "stop_reason")},
        "schedule": ckpt["schedule"],
        "scaler": ckpt["scaler"],
        "ranks": ranks,
    }
