"""nmt.training.optim: optimizer from config and the learning-rate schedules."""

from __future__ import annotations

import math

import pytest
import torch

from nmt.config import Optimizer, Schedule, TrainConfig
from nmt.training.optim import LRSchedule, build_optimizer


def schedule(**kw: object) -> LRSchedule:
    params = [torch.nn.Parameter(torch.zeros(2))]
    cfg = TrainConfig(**kw)  # type: ignore[arg-type]
    return LRSchedule(build_optimizer(params, cfg, torch.device("cpu")), cfg)


@pytest.mark.parametrize("kind", [Optimizer.adam, Optimizer.sgd])
def test_build_optimizer_uses_the_config(kind: Optimizer) -> None:
    frozen = torch.nn.Parameter(torch.zeros(3), requires_grad=False)
    p = torch.nn.Parameter(torch.zeros(2))
    opt = build_optimizer([p, frozen], TrainConfig(optimizer=kind, lr=0.5, momentum=0.9), torch.device("cpu"))
    assert isinstance(opt, torch.optim.Adam if kind == Optimizer.adam else torch.optim.SGD)
    assert opt.param_groups[0]["lr"] == 0.5
    assert [q is p for q in opt.param_groups[0]["params"]] == [True]  # frozen parameters left out
    p.grad = torch.ones(2)
    opt.step()
    assert (p != 0).all()


def test_constant() -> None:
    s = schedule(lr=0.3, schedule=Schedule.constant)
    assert [s.lr_at(step) for step in (1, 10, 10_000)] == [0.3, 0.3, 0.3]


def test_constant_with_warmup_ramps_linearly() -> None:
    s = schedule(lr=1.0, schedule=Schedule.constant, warmup_steps=4)
    assert [s.lr_at(step) for step in (1, 2, 4, 5, 100)] == pytest.approx([0.25, 0.5, 1.0, 1.0, 1.0])


def test_inverse_sqrt_with_warmup() -> None:
    s = schedule(lr=2.0, schedule=Schedule.inverse_sqrt, warmup_steps=100)
    assert s.lr_at(1) == pytest.approx(0.02)
    assert s.lr_at(50) == pytest.approx(1.0)
    assert s.lr_at(100) == pytest.approx(2.0)  # the peak at the end of warmup
    assert s.lr_at(400) == pytest.approx(2.0 * math.sqrt(100 / 400))
    assert s.lr_at(10_000) == pytest.approx(0.2)
    lrs = [s.lr_at(step) for step in range(1, 1000)]
    peak = lrs.index(max(lrs)) + 1
    assert peak == 100
    assert all(a <= b for a, b in zip(lrs[:99], lrs[1:100]))  # rising during warmup
    assert all(a >= b for a, b in zip(lrs[99:], lrs[100:]))  # falling afterwards


def test_inverse_sqrt_without_warmup() -> None:
    s = schedule(lr=1.0, schedule=Schedule.inverse_sqrt, warmup_steps=0)
    assert [s.lr_at(step) for step in (1, 4, 100)] == pytest.approx([1.0, 0.5, 0.1])


def test_step_sets_the_learning_rate_of_every_group() -> None:
    s = schedule(lr=1.0, schedule=Schedule.inverse_sqrt, warmup_steps=10)
    assert s.step(5) == pytest.approx(0.5)
    assert [g["lr"] for g in s.opt.param_groups] == pytest.approx([0.5])


def test_plateau_cuts_after_patience_and_never_below_min_lr() -> None:
    s = schedule(lr=1.0, schedule=Schedule.plateau, plateau_factor=0.5, plateau_patience=2, min_lr=0.2)
    events = [s.on_validation(m) for m in (10.0, 12.0)]  # improving
    assert events == [False, False] and s.lr_at(100) == 1.0
    assert s.on_validation(11.0) is False  # one bad validation: patience 2 not reached
    assert s.lr_at(100) == 1.0
    assert s.on_validation(12.0) is True  # equal is not better: second bad one, cut
    assert s.lr_at(100) == pytest.approx(0.5)
    assert s.on_validation(13.0) is False  # improvement resets the count
    assert [s.on_validation(1.0) for _ in range(4)] == [False, True, False, True]
    assert s.lr_at(100) == pytest.approx(0.2)  # 1 * 0.5^3 = 0.125, floored at min_lr
    for _ in range(10):
        s.on_validation(0.0)
    assert s.lr_at(100) == pytest.approx(0.2)


def test_only_the_plateau_schedule_cuts() -> None:
    s = schedule(lr=1.0, schedule=Schedule.constant, plateau_patience=1)
    s.on_validation(5.0)
    assert [s.on_validation(1.0) for _ in range(3)] == [False, False, False]
    assert s.lr_at(10) == 1.0


def test_state_dict_round_trip() -> None:
    kw = dict(lr=1.0, schedule=Schedule.plateau, plateau_factor=0.5, plateau_patience=1, min_lr=0.01)
    a = schedule(**kw)
    for m in (5.0, 4.0, 6.0, 3.0):
        a.on_validation(m)
    b = schedule(**kw)
    b.load_state_dict(a.state_dict())
    assert b.state_dict() == a.state_dict() == {"scale": 0.25, "best": 6.0, "bad": 0}
    assert b.lr_at(7) == a.lr_at(7) == pytest.approx(0.25)
    assert b.on_validation(5.0) == a.on_validation(5.0) is True
    assert b.lr_at(7) == a.lr_at(7)


def test_wsd_is_constant_then_decays_linearly_to_min_lr_over_the_last_fraction() -> None:
    cfg = TrainConfig(lr=2e-3, schedule=Schedule.wsd, decay_fraction=0.25, max_time=30, min_lr=1e-5)
    s = LRSchedule(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0), cfg)
    assert s.lr_at(100, progress=0.0) == pytest.approx(2e-3)
    assert s.lr_at(100, progress=0.75) == pytest.approx(2e-3)
    assert s.lr_at(100, progress=0.875) == pytest.approx(1e-5 + 0.5 * (2e-3 - 1e-5))
    assert s.lr_at(100, progress=1.0) == pytest.approx(1e-5)
    assert s.lr_at(100, progress=1.5) == pytest.approx(1e-5)


def test_wsd_needs_a_budget() -> None:
    from nmt import NmtError
    from nmt.checks import validate_train

    with pytest.raises(NmtError, match="max_steps or train.max_time"):
        validate_train(TrainConfig(schedule=Schedule.wsd))
