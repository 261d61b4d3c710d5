"""Model parameters and the train config in, an optimizer and its learning-rate schedule out;
the update itself, gradient clipping included (``clipped_step``)."""

from __future__ import annotations

import math

import torch

from nmt.config import Optimizer, Schedule, TrainConfig


def build_optimizer(params, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    # The fused implementations update every parameter in one kernel per tensor, on CUDA and on
    # CPU (4x faster than foreach for Adam on a 2-core CPU); fall back where a build lacks them.
    try:
        if cfg.optimizer == Optimizer.sgd:
            return torch.optim.SGD(
                params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, fused=True
            )
        return torch.optim.Adam(
            params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay, fused=True
        )
    except (RuntimeError, TypeError):
        if cfg.optimizer == Optimizer.sgd:
            return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)


def clipped_step(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, max_norm: float) -> float:
    """Clip the gradients by their global L2 norm (Pascanu et al. 2013), then step; returns the
    norm before clipping.

    Every gradient is scaled by min(1, max_norm / (norm + 1e-6)), the rule of
    ``torch.nn.utils.clip_grad_norm_``, which also multiplies when the factor is 1. Here a fused
    optimizer without a GradScaler gets the factor through ``grad_scale`` (the divisor its kernel
    applies to each gradient as it reads it, the hook GradScaler uses; a float32 scalar): no pass
    of its own over the 8M gradients, ~1 % of a CPU step of the peers' model (docs/benchmarks.md,
    2026-12-03, afternoon).
    ``max_norm`` 0: no clipping. A norm that is not finite skips the step (GradScaler, when enabled,
    decides itself) and is returned as it is.
    """
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if not grads:
        return 0.0
    scaler.unscale_(optimizer)
    norm = float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))))
    factor = max_norm / (norm + 1e-6) if max_norm > 0 else 1.0
    finite = math.isfinite(norm)
    clip = finite and factor < 1.0
    fold = clip and not scaler.is_enabled() and bool(optimizer.defaults.get("fused"))
    if clip and not fold:
        torch._foreach_mul_(grads, factor)
    if not (finite or scaler.is_enabled()):
        return norm
    if fold:
        optimizer.grad_scale = torch.tensor(1.0 / factor, dtype=torch.float32, device=grads[0].device)
    try:
        scaler.step(optimizer)
    finally:
        if fold:
            del optimizer.grad_scale
    scaler.update()
    return norm


class LRSchedule:
    """Learning rate per update: linear warmup, then constant, inverse square root, or cut on plateau.

    - constant:      lr
    - inverse_sqrt:  lr * sqrt(warmup / step) after warmup (Vaswani et al. 2017)
    - plateau:       lr * factor^k, k = times dev BLEU failed to improve for ``plateau_patience``
                     validations in a row (the classic "halve when dev stops improving" of
                     Luong et al. 2015 / Bahdanau et al. 2015 style training), floored at min_lr.
    - wsd:           warmup, stable, decay: lr until the last ``decay_fraction`` of the budget
                     (train.max_steps or train.max_time, whichever comes first), then a linear
                     decay to min_lr (Hägele et al. 2024). Made for fixed budgets ("30 minutes").
    ``progress`` is the fraction of the budget used so far, given by the trainer.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> None:
        self.opt, self.cfg = optimizer, cfg
        self.scale = 1.0  # plateau cuts so far
        self.best = -math.inf
        self.bad = 0

    def lr_at(self, step: int, progress: float = 0.0) -> float:
        c = self.cfg
        warm = min(1.0, step / c.warmup_steps) if c.warmup_steps > 0 else 1.0
        lr = c.lr * warm
        if c.schedule == Schedule.inverse_sqrt and c.warmup_steps > 0 and step > c.warmup_steps:
            lr = c.lr * math.sqrt(c.warmup_steps / step)
        elif c.schedule == Schedule.inverse_sqrt and c.warmup_steps == 0:
            lr = c.lr / math.sqrt(max(step, 1))
        if c.schedule == Schedule.plateau:
            lr *= self.scale
            if step >= c.warmup_steps:
                lr = max(c.min_lr, lr)
        if c.schedule == Schedule.wsd and c.decay_fraction > 0:
            left = (1.0 - progress) / c.decay_fraction  # > 1 while stable, 1 -> 0 while decaying
            if left < 1.0:
                lr = c.min_lr + (lr - c.min_lr) * max(left, 0.0)
        return lr

    def step(self, step: int, progress: float = 0.0) -> float:
        """Set the learning rate for update ``step`` (1-based) and return it."""
        lr = self.lr_at(step, progress)
        for group in self.opt.param_groups:
            group["lr"] = lr
        return lr

    def on_validation(self, metric: float) -> bool:
        """Report dev BLEU; returns True when the plateau schedule cut the learning rate."""
        if metric > self.best:
            self.best, self.bad = metric, 0
            return False
        self.bad += 1
        if self.cfg.schedule == Schedule.plateau and self.bad >= self.cfg.plateau_patience:
            self.scale *= self.cfg.plateau_factor
            self.bad = 0
            return True
        return False

    def state_dict(self) -> dict:
        return {"scale": self.scale, "best": self.best, "bad": self.bad}

    def load_state_dict(self, state: dict) -> None:
        self.scale, self.best, self.bad = state["scale"], state["best"], state["bad"]
