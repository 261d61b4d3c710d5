"""Gold targets and logits (``sequence_loss``) or the output layer's input (``output_loss``) in,
label-smoothed and plain NLL sums over real (non-pad) tokens out.

``output_loss`` is what training runs: the output projection fused with the loss, so that the
(tokens x vocabulary) logits are never held. It lives with the model (``Seq2Seq.forward`` with
targets) so that serving and translating never import the training package.
"""

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


def _chunk_rows(vocab: int, bytes_per_score: int = 4, budget: int = 32 << 20) -> int:
    """Rows per chunk so that one chunk's (rows x vocab) scores take about 32 MiB at their peak:
    4 bytes a score in float32, 2 + 4 under bf16 (the product's bf16 scores and their float32
    copy are both alive for a moment)."""
    return max(128, budget // (vocab * bytes_per_score) // 128 * 128)


class _FusedOutputLoss(torch.autograd.Function):
    """Output projection and label-smoothed cross-entropy over row chunks, gradients in forward.

    The full (rows x vocab) logits are never held: for each chunk of rows, forward computes the
    scores (in the autocast dtype when one is given), the loss in float32, and at once the chunk's
    gradient with respect to the scores, which the two backward products turn into the gradients
    of the hidden rows, the weight and the bias (the weight's summed over chunks inside the
    product). Backward only scales those, in place, by the incoming gradient (the loss is a sum,
    so it enters linearly), which is why the graph runs backward once only. Memory is one chunk of
    scores instead of two (rows x vocab) float32 tensors, and every chunk but the last has the same
    shape, so oneDNN's per-shape primitives stay few. The same products as the unfused step are
    computed.
    """

    @staticmethod
    def forward(
        ctx,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        target: torch.Tensor,
        eps: float,
        dtype: torch.dtype,
        want_grad: bool,
        chunk: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        rows, vocab = hidden.size(0), weight.size(0)
        acc = torch.promote_types(dtype, torch.float32)  # softmax and sums: float32 at least
        h, w = hidden.to(dtype), weight.to(dtype)  # (rows, d), (vocab, d)
        b = None if bias is None else bias.to(dtype)
        grad_h = torch.empty_like(h) if want_grad else None
        grad_w = grad_b = None  # (vocab, d), (vocab,) in acc: the first chunk's, then accumulated
        nll = torch.zeros((), dtype=acc, device=hidden.device)
        smooth = torch.zeros_like(nll)
        for r0 in range(0, rows, chunk):
            hc, tc = h[r0 : r0 + chunk], target[r0 : r0 + chunk]  # (c, d), (c,)
            z = (hc @ w.t() if b is None else torch.addmm(b, hc, w.t())).to(acc)  # (c, vocab)
            z.sub_(z.amax(dim=1, keepdim=True))
            real = (tc != PAD).to(acc)  # (c,)
            gold = z.gather(1, tc.unsqueeze(1)).squeeze(1)
            mean = z.mean(dim=1) if eps > 0 else None  # for label smoothing only
            s = z.exp_().sum(dim=1)  # z is now e = exp(z - max)
            log_s = s.log()
            nll += ((log_s - gold) * real).sum()
            if eps > 0:
                smooth += ((log_s - mean) * real).sum()
            if want_grad:
                z.mul_((real / s).unsqueeze(1))  # softmax * real: z is now the scores' gradient
                if eps > 0:
                    z.sub_((real * (eps / vocab)).unsqueeze(1))
                z.scatter_add_(1, tc.unsqueeze(1), (-(1.0 - eps) * real).unsqueeze(1))
                if b is not None:
                    grad_b = z.sum(dim=0) if grad_b is None else grad_b.add_(z.sum(dim=0))
                g = z.to(dtype)
                del z  # under bf16 the float32 scores go before the two products
                torch.mm(g, w, out=grad_h[r0 : r0 + chunk])  # (c, d)
                if grad_w is None:
                    grad_w = (g.t() @ hc).to(acc)  # (vocab, d)
                elif dtype == acc:
                    grad_w.addmm_(g.t(), hc)  # summed inside the product: no (vocab, d) temporary
                else:
                    grad_w += (g.t() @ hc).to(acc)
        loss = (1.0 - eps) * nll + eps * smooth if eps > 0 else nll.clone()
        if want_grad:
            if grad_w is None:  # no rows
                grad_w = torch.zeros(weight.shape, dtype=acc, device=weight.device)
                grad_b = None if b is None else torch.zeros(vocab, dtype=acc, device=weight.device)
            ctx.save_for_backward(grad_h, grad_w, grad_b)
        ctx.consumed = False
        ctx.dtypes = (hidden.dtype, weight.dtype)
        ctx.mark_non_differentiable(nll)
        return loss, nll

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor, grad_nll: torch.Tensor):  # noqa: ANN205
        if ctx.consumed:
            raise RuntimeError(
                "the fused output loss was already run backward: its gradients are scaled in place"
            )
        ctx.consumed = True
        grad_h, grad_w, grad_b = ctx.saved_tensors
        hd, wd = ctx.dtypes
        # the loss enters linearly: scale the gradients computed in forward, in place
        gh = grad_h.mul_(grad_loss.to(grad_h.dtype)).to(hd)
        gw = grad_w.mul_(grad_loss).to(wd)
        gb = None if grad_b is None else grad_b.mul_(grad_loss).to(wd)
        return gh, gw, gb, None, None, None, None, None


def _score_bytes(dtype: torch.dtype) -> int:
    """Bytes a score takes at the peak of a chunk: the product's and the float32 (or wider) copy's."""
    acc = torch.promote_types(dtype, torch.float32)
    return acc.itemsize + (dtype.itemsize if dtype != acc else 0)


def output_loss(
    hidden: torch.Tensor,
    output: torch.nn.Linear,
    target: torch.Tensor,
    label_smoothing: float,
    chunk_rows: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """hidden (batch, tgt_len, d) before the output layer, target (batch, tgt_len) -> (loss sum, NLL sum).

    The same figures as ``sequence_loss(output(hidden), target, label_smoothing)`` without the
    (batch x tgt_len x vocab) logits: see ``_FusedOutputLoss``. Products run in the autocast dtype
    when autocast is on (bf16 on a CPU); under float16 autocast, whose unscaled per-chunk gradients
    could underflow, it falls back to the unfused loss. ``chunk_rows`` 0: about 32 MiB of
    scores per chunk at their peak.
    """
    dev = hidden.device.type
    dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else output.weight.dtype
    if dtype == torch.float16:
        return sequence_loss(output(hidden), target, label_smoothing)
    want_grad = torch.is_grad_enabled() and (hidden.requires_grad or output.weight.requires_grad)
    with torch.autocast(dev, enabled=False):
        return _FusedOutputLoss.apply(
            hidden.flatten(0, 1),
            output.weight,
            output.bias,
            target.reshape(-1),
            float(label_smoothing),
            dtype,
            want_grad,
            chunk_rows or _chunk_rows(output.weight.size(0), _score_bytes(dtype)),
        )
