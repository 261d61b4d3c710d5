"""Logits and gold targets in, label-smoothed and plain NLL sums over real (non-pad) tokens out."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nmt.data.tokenizer import PAD


def sequence_loss(
    logits: torch.Tensor, target: torch.Tensor, label_smoothing: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """logits (batch, tgt_len, vocab), target (batch, tgt_len) -> (loss sum, NLL sum), padding ignored.

    Label smoothing (Szegedy et al. 2016) mixes the one-hot target with a uniform distribution:
        loss = (1 - eps) * NLL + eps * mean_v(-log p_v)
    (the same definition as ``F.cross_entropy(label_smoothing=eps)``). The NLL sum is returned
    too, for perplexity. Both are computed in float32 from one log-softmax.
    """
    lprobs = F.log_softmax(logits.float(), dim=-1).flatten(0, 1)  # (batch*tgt_len, vocab)
    target = target.reshape(-1)  # (batch*tgt_len,)
    nll = F.nll_loss(lprobs, target, ignore_index=PAD, reduction="sum")
    if label_smoothing == 0.0:
        return nll, nll.detach()
    real = target != PAD
    smooth = -(lprobs.sum(-1) * real).sum() / lprobs.size(-1)
    return (1.0 - label_smoothing) * nll + label_smoothing * smooth, nll.detach()
