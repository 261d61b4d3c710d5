"""nmt.model.loss: the fused label-smoothed loss equals PyTorch's cross-entropy in value and gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nmt.data.tokenizer import PAD
from nmt.model.loss import output_loss, sequence_loss


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


# --- the fused output layer + loss (output_loss) --------------------------------------------------


def hidden_inputs(
    bias: bool, dtype: torch.dtype = torch.float64, tie: bool = False
) -> tuple[torch.Tensor, torch.nn.Linear, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    out = torch.nn.Linear(6, 23, bias=bias).to(dtype)
    with torch.no_grad():
        out.weight.copy_(torch.randn(23, 6, generator=g, dtype=dtype))
    hidden = torch.randn(3, 9, 6, generator=g, dtype=dtype)  # (batch, tgt_len, d)
    target = torch.randint(4, 23, (3, 9), generator=g)
    target[0, 5:] = PAD
    target[2, 2:] = PAD
    return hidden, out, target


def grads_of(loss: torch.Tensor, hidden: torch.Tensor, out: torch.nn.Linear) -> list[torch.Tensor]:
    params = [hidden, out.weight] + ([out.bias] if out.bias is not None else [])
    return list(torch.autograd.grad(loss * 0.37, params))  # any upstream scale enters linearly


@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("chunk", [0, 4, 5, 1000])  # default, several chunks with a ragged last one, one
def test_fused_output_loss_equals_the_unfused_one(eps: float, bias: bool, chunk: int) -> None:
    hidden, out, target = hidden_inputs(bias)
    hidden.requires_grad_()
    loss, nll = output_loss(hidden, out, target, eps, chunk_rows=chunk)
    want = reference(out(hidden), target, eps)  # float64 all through
    torch.testing.assert_close(loss, want, atol=1e-10, rtol=1e-12)
    torch.testing.assert_close(nll, reference(out(hidden), target, 0.0), atol=1e-10, rtol=1e-12)
    assert not nll.requires_grad
    for got, exp in zip(grads_of(loss, hidden, out), grads_of(want, hidden, out), strict=True):
        torch.testing.assert_close(got, exp, atol=1e-10, rtol=1e-10)


def test_fused_output_loss_is_exact_where_probabilities_underflow() -> None:
    # logits hundreds apart: the gold tokens' probabilities underflow float32 to 0, yet their
    # log-probabilities (the loss) and the gradients stay finite and equal the float64 reference
    hidden, out, target = hidden_inputs(True, torch.float32)
    hidden = (hidden * 60).requires_grad_()
    loss, nll = output_loss(hidden, out, target, 0.1, chunk_rows=4)
    want = reference(out(hidden).double(), target, 0.1)
    assert torch.softmax(out(hidden), -1).gather(-1, target.unsqueeze(-1)).min() == 0  # they do underflow
    torch.testing.assert_close(loss.double(), want, rtol=1e-5, atol=0)
    got = grads_of(loss, hidden, out)
    exp = grads_of(want, hidden, out)
    for g, e in zip(got, exp, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-5 * float(e.abs().max()))


def test_fused_output_loss_gives_padding_rows_no_gradient() -> None:
    hidden, out, target = hidden_inputs(True)
    hidden.requires_grad_()
    loss, _ = output_loss(hidden, out, target, 0.1, chunk_rows=4)
    (grad_h, *_) = grads_of(loss, hidden, out)
    pad = target == PAD
    assert (grad_h[pad] == 0).all() and (grad_h[~pad].abs().sum(-1) > 0).all()


def test_fused_output_loss_under_bf16_autocast_is_close_to_float32() -> None:
    hidden, out, target = hidden_inputs(True, torch.float32)
    hidden.requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, nll = output_loss(hidden, out, target, 0.1, chunk_rows=4)
    assert loss.dtype == torch.float32 and nll.dtype == torch.float32
    want, _ = sequence_loss(out(hidden), target, 0.1)  # float32 all through
    torch.testing.assert_close(loss, want, rtol=2e-2, atol=0)  # bf16 products: about 3 digits
    got = grads_of(loss, hidden, out)
    exp = grads_of(want, hidden, out)
    for g, e in zip(got, exp, strict=True):
        assert g.dtype == torch.float32  # parameters' and inputs' own dtype
        assert float((g - e).norm() / e.norm()) < 3e-2


def test_fused_output_loss_without_grad_mode_only_scores() -> None:
    hidden, out, target = hidden_inputs(True)
    with torch.no_grad():
        loss, nll = output_loss(hidden, out, target, 0.0, chunk_rows=4)
    assert not loss.requires_grad
    want = reference(out(hidden), target, 0.0)
    torch.testing.assert_close(nll, want, atol=1e-10, rtol=1e-12)


def test_fused_output_loss_reaches_a_tied_embedding() -> None:
    """With tied embeddings the output weight is the embedding table: both uses add up."""
    hidden, out, target = hidden_inputs(True)
    emb = torch.nn.Embedding(23, 6).double()
    emb.weight = out.weight
    src = torch.tensor([[5, 7, 9]])

    def total(fused: bool) -> torch.Tensor:
        h = hidden + emb(src).sum()
        return output_loss(h, out, target, 0.1)[0] if fused else reference(out(h), target, 0.1)

    (got,) = torch.autograd.grad(total(True), [out.weight])
    (want,) = torch.autograd.grad(total(False), [out.weight])
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)


def test_fused_output_loss_refuses_a_second_backward() -> None:
    """Its gradients are computed in forward and scaled in place by backward: a second backward
    (retain_graph) would scale them twice, so it is an error, not a wrong gradient."""
    torch.manual_seed(0)
    out = torch.nn.Linear(6, 11)
    hidden = torch.randn(2, 3, 6, requires_grad=True)
    loss, _ = output_loss(hidden, out, torch.randint(1, 11, (2, 3)), 0.0)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="already run backward"):
        loss.backward()
