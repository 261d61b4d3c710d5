"""Logits and gold targets in, label-smoothed and plain NLL sums over real (non-pad) tokens out."""

from __future__ import annotations

import torch

from nmt.data.tokenizer import PAD


class _SmoothedCrossEntropy(torch.autograd.Function):
    """Label-smoothed cross-entropy summed over non-pad rows, with few passes over (rows x vocab).

    With m = max_v z_v, e = exp(z - m), s = sum_v e_v:  log p_v = z_v - m - log s, and
        d loss / d z = e / s - (1 - eps) * onehot(y) - eps / V      (times the row's weight).
    Forward keeps e (instead of z: the same memory); backward turns it into the gradient in place.
    PyTorch's log_softmax + nll_loss + smoothing materialise four (rows x vocab) tensors and,
    on a CPU, cost more than the output projection itself (bench/train_speed.py --profile).
    The saved tensor is consumed by backward, so the graph cannot be run backward twice.
    """

    @staticmethod
    def forward(
        ctx, logits: torch.Tensor, target: torch.Tensor, eps: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        m = logits.amax(dim=1, keepdim=True)  # (rows, 1)
        e = (logits - m).exp_()  # (rows, vocab)
        s = e.sum(dim=1)  # (rows,)
        lse = m.squeeze(1) + s.log()  # (rows,) log-sum-exp
        real = target != PAD  # (rows,)
        nll = ((lse - logits.gather(1, target.unsqueeze(1)).squeeze(1)) * real).sum()
        loss = nll.clone()  # nll itself is returned detached
        if eps > 0:
            smooth = ((lse - logits.mean(dim=1)) * real).sum()  # sum over rows of mean_v(-log p_v)
            loss = (1.0 - eps) * nll + eps * smooth
        ctx.save_for_backward(e, s, target, real)
        ctx.eps = eps
        ctx.mark_non_differentiable(nll)
        return loss, nll

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor, grad_nll: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        e, s, target, real = ctx.saved_tensors
        eps = ctx.eps
        w = grad_loss * real  # (rows,) weight of each row
        grad = e.mul_((w / s).unsqueeze(1))  # softmax * w, in place
        if eps > 0:
            grad.sub_((w * (eps / e.size(1))).unsqueeze(1))
        grad.scatter_add_(1, target.unsqueeze(1), (-(1.0 - eps) * w).unsqueeze(1))
        return grad, None, None


def sequence_loss(
    logits: torch.Tensor, target: torch.Tensor, label_smoothing: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """logits (batch, tgt_len, vocab), target (batch, tgt_len) -> (loss sum, NLL sum), padding ignored.

    Label smoothing (Szegedy et al. 2016) mixes the one-hot target with a uniform distribution:
        loss = (1 - eps) * NLL + eps * mean_v(-log p_v)
    (the definition of ``F.cross_entropy(label_smoothing=eps)``). The NLL sum (for perplexity) is
    returned detached. Computed in float32 whatever the autocast dtype of the logits.
    """
    flat = logits.float().flatten(0, 1)  # (batch*tgt_len, vocab)
    return _SmoothedCrossEntropy.apply(flat, target.reshape(-1), float(label_smoothing))
