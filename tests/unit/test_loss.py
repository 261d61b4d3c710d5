"""nmt.training.loss: the fused label-smoothed loss equals PyTorch's cross-entropy in value and gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nmt.data.tokenizer import PAD
from nmt.training.loss import sequence_loss


def inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(3, 5, 11, generator=g, dtype=torch.float64)).float()  # (batch, tgt_len, vocab)
    target = torch.randint(4, 11, (3, 5), generator=g)  # (batch, tgt_len)
    target[0, 3:] = PAD
    target[2, 1:] = PAD
    return logits, target


def reference(logits: torch.Tensor, target: torch.Tensor, eps: float) -> torch.Tensor:
    return F.cross_entropy(
        logits.flatten(0, 1), target.flatten(), ignore_index=PAD, label_smoothing=eps, reduction="sum"
    )


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_value_and_gradient_equal_cross_entropy(eps: float) -> None:
    logits, target = inputs()
    a = logits.clone().requires_grad_()
    b = logits.clone().requires_grad_()
    loss, _ = sequence_loss(a, target, eps)
    want = reference(b, target, eps)
    torch.testing.assert_close(loss, want, atol=1e-5, rtol=1e-6)
    loss.backward()
    want.backward()
    torch.testing.assert_close(a.grad, b.grad, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_padding_positions_get_zero_gradient(eps: float) -> None:
    logits, target = inputs()
    logits.requires_grad_()
    sequence_loss(logits, target, eps)[0].backward()
    pad = target == PAD
    assert (logits.grad[pad] == 0).all()
    assert (logits.grad[~pad].abs().sum(-1) > 0).all()


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_nll_is_the_unsmoothed_loss_and_detached(eps: float) -> None:
    logits, target = inputs()
    logits.requires_grad_()
    _, nll = sequence_loss(logits, target, eps)
    torch.testing.assert_close(nll, reference(logits.detach(), target, 0.0), atol=1e-5, rtol=1e-6)
    assert not nll.requires_grad


def test_gradient_scales_with_the_upstream_gradient() -> None:
    logits, target = inputs()
    a = logits.clone().requires_grad_()
    b = logits.clone().requires_grad_()
    (sequence_loss(a, target, 0.1)[0] * 0.25).backward()
    (reference(b, target, 0.1) * 0.25).backward()
    torch.testing.assert_close(a.grad, b.grad, atol=1e-6, rtol=1e-5)


def test_gradient_flows_through_a_model_output() -> None:
    logits, target = inputs()
    w = torch.ones((), requires_grad=True)
    sequence_loss(logits * w, target, 0.1)[0].backward()
    w2 = torch.ones((), requires_grad=True)
    reference(logits * w2, target, 0.1).backward()
    torch.testing.assert_close(w.grad, w2.grad, atol=1e-4, rtol=1e-5)


def test_all_padding_gives_zero_loss() -> None:
    logits = torch.randn(2, 3, 7, requires_grad=True)
    target = torch.full((2, 3), PAD)
    loss, nll = sequence_loss(logits, target, 0.1)
    assert float(loss.detach()) == 0.0 and float(nll) == 0.0
    loss.backward()
    assert (logits.grad == 0).all()


def test_low_precision_logits_are_scored_in_float32() -> None:
    logits, target = inputs()
    loss, nll = sequence_loss(logits.bfloat16(), target, 0.1)
    assert loss.dtype == torch.float32 and nll.dtype == torch.float32
    torch.testing.assert_close(loss, reference(logits.bfloat16().float(), target, 0.1), atol=1e-4, rtol=1e-5)


def test_extreme_logits_stay_finite() -> None:
    logits = torch.tensor([[[1e4, -1e4, 0.0, 5.0]]], requires_grad=True)
    target = torch.tensor([[1]])
    loss, _ = sequence_loss(logits, target, 0.1)
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
