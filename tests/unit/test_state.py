"""TrainState: saved and restored whole; the batch order is a function of (seed, epoch)."""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import torch

from nmt.config import Schedule, TrainConfig
from nmt.training.optim import LRSchedule
from nmt.training.progress import Meter
from nmt.training.state import TrainState, epoch_generator, upgrade


def _state() -> TrainState:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=1.0)
    tc = TrainConfig(schedule=Schedule.plateau, plateau_patience=1)
    return TrainState(LRSchedule(opt, tc), torch.amp.GradScaler("cpu", enabled=False))


def test_every_counter_is_saved_and_restored() -> None:
    a = _state()
    for k, f in enumerate(fields(a)):
        if f.name not in TrainState.OBJECTS and f.name != "stop_reason":
            setattr(a, f.name, type(getattr(a, f.name))(k + 1))
    a.schedule.on_validation(1.0)
    a.schedule.on_validation(0.5)  # a cut
    a.meter = Meter(3.0, 2.0, 7, [1.5], 1)
    torch.manual_seed(5)
    saved = a.state_dict([a.rank_state(torch.device("cpu"))])
    expected = torch.rand(3)

    b = _state()
    torch.manual_seed(99)
    b.load_state_dict(saved, rank=0, world=1, seed=1, device=torch.device("cpu"))
    assert b.state_dict([b.rank_state(torch.device("cpu"))]).keys() == saved.keys()
    assert b.counters() == a.counters()
    assert b.schedule.state_dict() == a.schedule.state_dict() and b.schedule.scale < 1
    assert b.meter.state() == a.meter.state()
    assert torch.equal(torch.rand(3), expected)  # the dropout stream goes on where it was


def test_another_process_count_reseeds_and_starts_a_fresh_meter() -> None:
    a = _state()
    a.step, a.meter = 10, Meter(1.0, 1.0, 5)
    saved = a.state_dict([a.rank_state(torch.device("cpu"))])
    b = _state()
    b.load_state_dict(saved, rank=1, world=2, seed=3, device=torch.device("cpu"))
    assert b.step == 10 and b.meter.tokens == 0


def test_epoch_order_depends_on_seed_and_epoch_only() -> None:
    a = epoch_generator(1234, 2).permutation(100)
    epoch_generator(1234, 1).permutation(100)  # drawing another epoch's order changes nothing
    assert np.array_equal(a, epoch_generator(1234, 2).permutation(100))
    assert not np.array_equal(a, epoch_generator(1234, 3).permutation(100))
    assert not np.array_equal(a, epoch_generator(1235, 2).permutation(100))


def test_a_last_pt_of_the_older_layout_is_upgraded() -> None:
    a = _state()
    old = {
        "state": {"step": 4, "epoch": 1, "batch_in_epoch": 0, "epoch_rng": {"x": 1}, "best_metric": -math.inf}
        | {"best_step": 0, "bad_validations": 0, "last_valid_step": 4, "train_seconds": 1.0, "tokens": 9}
        | {"stop_reason": "max_steps=4"},
        "schedule": a.schedule.state_dict(),
        "scaler": a.scaler.state_dict(),
        "ranks": [{"rng": {"torch": torch.get_rng_state()}, "meter": Meter().state()}],
    }
    b = _state()
    b.load_state_dict(upgrade(old), rank=0, world=1, seed=1, device=torch.device("cpu"))
    assert (b.step, b.epoch, b.tokens) == (4, 1, 9)
