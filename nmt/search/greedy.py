"""Greedy decoding and sampling: one piece per sentence per step, the whole batch at once.

Greedy takes the most likely piece. Sampling draws from softmax(log p / T) restricted to the
``top_k`` most likely pieces (temperature T as in Karpathy's char-rnn: T < 1 sharper and safer,
T > 1 more varied). Sentences that have finished are removed from the batch, so the cost follows
the sentences still running.

Sampling uses the Gumbel-max trick, argmax_v (log p_v / T + g_v) with g_v ~ Gumbel(0, 1), and
the noise g is a hash of (seed, sentence key, step, piece) rather than the state of a shared
generator. So a sentence's sample depends only on the seed and its key (the translator uses the
line number): the same file gives the same samples whatever the batch size, chunking or device,
and a sentence sampled alone gives what it gives inside a batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from nmt.config import SearchConfig
from nmt.data.tokenizer import BOS, EOS, PAD
from nmt.search.common import (
    NEG_INF,
    Hypothesis,
    SearchModel,
    constrain,
    length_limits,
    lower_margins,
    max_steps,
    top2_gap,
)

# picks one piece per row: (log-probs (rows, vocab), step, keys (rows,)) -> (pieces (rows,), decision scores)
Pick = Callable[[torch.Tensor, int, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

_M32 = 0xFFFFFFFF


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash applied elementwise to int64 values in [0, 2^32) (xorshift-multiply
    rounds; the odd multipliers are below 2^31 so no product leaves the int64 range)."""
    for mult in (0x7FEB352D, 0x5BD1E995, 0x2C1B3C6D):
        x = x ^ (x >> 16)
        x = (x * mult) & _M32
    return x ^ (x >> 15)


def gumbel_noise(seed: int, keys: torch.Tensor, step: int, vocab: int, dtype: torch.dtype) -> torch.Tensor:
    """Gumbel(0, 1) noise (rows, vocab), a pure function of (seed, key of the row, step, piece)."""
    base = _mix32((keys.long() & _M32) ^ _mix32(torch.tensor(seed & _M32, device=keys.device)))  # (rows,)
    base = _mix32(base ^ _mix32(torch.tensor(step & _M32, device=keys.device)))
    pieces = torch.arange(vocab, device=keys.device)  # (vocab,)
    bits = _mix32(base.unsqueeze(1) ^ pieces.unsqueeze(0))  # (rows, vocab) uniform 32-bit integers
    u = (bits.to(torch.float64) + 0.5) / 2.0**32  # (rows, vocab) in (0, 1)
    return (-torch.log(-torch.log(u))).to(dtype)


def pick_greedy(lp: torch.Tensor, step: int, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return lp.argmax(-1), lp


class Sampler:
    """Draws one piece per row from the tempered, top-k-filtered distribution (Gumbel-max)."""

    def __init__(self, temperature: float, top_k: int, seed: int) -> None:
        self.temperature, self.top_k, self.seed = temperature, top_k, seed

    def __call__(self, lp: torch.Tensor, step: int, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = lp / self.temperature  # (rows, vocab)
        if 0 < self.top_k < logits.size(1):
            kth = logits.topk(self.top_k, dim=1).values[:, -1:]  # (rows, 1)
            logits = logits.masked_fill(logits < kth, NEG_INF)
        scores = logits + gumbel_noise(self.seed, keys, step, logits.size(1), logits.dtype)  # (rows, vocab)
        return scores.argmax(-1), scores


@torch.no_grad()  # not inference_mode: under it, autocast re-casts every weight at every step
def greedy_search(
    model: SearchModel,
    src: torch.Tensor,
    src_lens: torch.Tensor,
    cfg: SearchConfig,
    pick: Pick = pick_greedy,
    with_attention: bool = False,
    keys: torch.Tensor | None = None,
    margins: torch.Tensor | None = None,
) -> list[list[Hypothesis]]:
    """src (batch, src_len), src_lens (batch,) CPU -> one hypothesis per sentence (score = log-prob).

    ``keys`` (batch,): each sentence's random stream for sampling (default: its row).
    ``margins`` (batch,): if given, lowered in place to the smallest gap between the chosen
    piece's decision score and the runner-up's over the sentence's steps.
    """
    device = src.device
    mem, state = model.encode(src, src_lens)
    batch, src_len = src.shape
    limit = length_limits(src_lens, cfg)  # (batch,) on the CPU
    steps = max_steps(limit)
    keys = (torch.arange(batch) if keys is None else keys).to(device)
    out = torch.full((batch, steps), PAD, dtype=torch.long, device=device)  # pieces, original rows
    lengths = torch.zeros(batch, dtype=torch.long, device=device)
    logp: torch.Tensor | None = None  # (batch,) in the dtype of the model's log-probabilities
    attn_out = torch.zeros(batch, steps, src_len, device=device) if with_attention else None
    active = torch.arange(batch, device=device)  # original row of each running sentence
    tokens = torch.full((batch,), BOS, dtype=torch.long, device=device)
    for t in range(steps):
        lp, state, weights = model.decode_step(tokens, state, mem)  # (rows, vocab), (rows, src_len)
        if logp is None:
            logp = lp.new_zeros(batch)
        history = out.index_select(0, active) if cfg.no_repeat_ngram else None
        lp = constrain(lp, t, limit, cfg, history)
        tokens, decision = pick(lp, t, keys[active])  # (rows,), (rows, vocab)
        if margins is not None:
            lower_margins(margins, active, top2_gap(decision))
        out[active, t] = tokens
        logp.index_add_(0, active, lp.gather(1, tokens.unsqueeze(1)).squeeze(1))
        lengths[active] = t + 1
        if attn_out is not None:
            attn_out[active, t] = weights.float()
        done = (tokens == EOS).cpu()  # the one host sync per step
        if bool(done.all()):
            break
        if bool(done.any()):
            keep_cpu = (~done).nonzero().squeeze(1)
            keep = keep_cpu.to(device)
            active, limit, tokens = active[keep], limit[keep_cpu], tokens[keep]
            state, mem = state.select(keep), mem.select(keep)
    out, lengths = out.cpu(), lengths.cpu()
    logp = logp.cpu() if logp is not None else torch.zeros(batch)
    results = []
    for b in range(batch):
        n = int(lengths[b])
        toks = out[b, :n].tolist()
        if toks and toks[-1] == EOS:
            toks = toks[:-1]
        att = attn_out[b, :n].cpu() if attn_out is not None else None
        results.append([Hypothesis(toks, float(logp[b]), float(logp[b]), att)])
    return results
