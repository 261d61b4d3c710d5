"""nmt.training.optim: optimizer from config and the learning-rate schedules."""

from __future__ import annotations

import math

import pytest
import torch

from nmt.config import Optimizer, Schedule, TrainConfig
from nmt.training.optim import LRSchedule, build_optimizer, clipped_step


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


# --- clipped_step: clipping by global norm, folded into a fused optimizer -------------------------


def _params_with_grads(scale: float, seed: int = 0) -> list[torch.nn.Parameter]:
    """Three float64 parameters with gradients whose global norm is about ``scale`` x 3."""
    g = torch.Generator().manual_seed(seed)
    params = []
    for shape in ((7, 5), (5,), (3, 4, 2)):
        p = torch.nn.Parameter(torch.randn(shape, generator=g, dtype=torch.float64))
        p.grad = scale * torch.randn(shape, generator=g, dtype=torch.float64)
        params.append(p)
    return params


def _reference_step(params: list[torch.nn.Parameter], opt: torch.optim.Optimizer, max_norm: float) -> float:
    norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm or math.inf))
    opt.step()
    return norm


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("kind", [Optimizer.adam, Optimizer.sgd])
@pytest.mark.parametrize(("scale", "max_norm"), [(10.0, 1.0), (0.1, 5.0), (10.0, 0.0)])
def test_clipped_step_updates_as_clip_grad_norm_then_step(
    fused: bool, kind: Optimizer, scale: float, max_norm: float
) -> None:
    cfg = TrainConfig(optimizer=kind, lr=0.1, momentum=0.9)
    mine, ref = _params_with_grads(scale), _params_with_grads(scale)
    make = build_optimizer if fused else _unfused
    opt_mine, opt_ref = make(mine, cfg, torch.device("cpu")), make(ref, cfg, torch.device("cpu"))
    assert bool(opt_mine.defaults.get("fused")) == fused
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    for step in range(3):  # Adam's moments carry the clipped gradients into later steps
        if step:
            for a, b, new in zip(mine, ref, _params_with_grads(scale, seed=step)):
                a.grad, b.grad = new.grad.clone(), new.grad.clone()
        norm = clipped_step(opt_mine, scaler, max_norm)
        assert norm == pytest.approx(_reference_step(ref, opt_ref, max_norm), rel=1e-12)
        if max_norm:
            assert (norm > max_norm) == (scale > 1)  # both cases are exercised
        # a fused optimizer takes the factor as a float32 scalar (GradScaler's hook): float32's
        # rounding of it, ~6e-8 relative, against float64's everywhere else
        tol = 1e-6 if fused and max_norm and scale > 1 else 1e-12
        for a, b in zip(mine, ref):
            torch.testing.assert_close(a, b, rtol=tol, atol=tol)
    assert not hasattr(opt_mine, "grad_scale")  # the hook is removed after the step


def _unfused(
    params: list[torch.nn.Parameter], cfg: TrainConfig, device: torch.device
) -> torch.optim.Optimizer:
    if cfg.optimizer == Optimizer.sgd:
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum)
    return torch.optim.Adam(params, lr=cfg.lr)


def test_clipped_step_skips_the_update_when_the_norm_is_not_finite() -> None:
    params = _params_with_grads(1.0)
    params[1].grad[2] = math.nan
    before = [p.detach().clone() for p in params]
    opt = build_optimizer(params, TrainConfig(lr=0.1), torch.device("cpu"))
    norm = clipped_step(opt, torch.amp.GradScaler("cpu", enabled=False), 1.0)
    assert math.isnan(norm)
    for p, b in zip(params, before):
        assert torch.equal(p.detach(), b)
    assert not opt.state  # Adam never stepped
