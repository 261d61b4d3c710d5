"""Greedy decoding and sampling: one piece per sentence per step, the whole batch at once.

Greedy takes the most likely piece. Sampling draws from softmax(log p / T) restricted to the
``top_k`` most likely pieces (temperature T as in Karpathy's char-rnn: T < 1 sharper and safer,
T > 1 more varied), from a seeded generator so runs repeat. Sentences that have finished are
removed from the batch, so the cost follows the sentences still running.
"""

from __future__ import annotations

import torch

from nmt.config import SearchConfig
from nmt.data.tokenizer import BOS, EOS, PAD
from nmt.search.common import Hypothesis, SearchModel, constrain, length_limits, max_steps


def pick_greedy(lp: torch.Tensor) -> torch.Tensor:
    return lp.argmax(-1)


class Sampler:
    """Draws one piece per row from the tempered, top-k-filtered distribution."""

    def __init__(self, temperature: float, top_k: int, seed: int, device: torch.device) -> None:
        self.temperature, self.top_k = temperature, top_k
        self.gen = torch.Generator(device=device)
        self.gen.manual_seed(seed)

    def __call__(self, lp: torch.Tensor) -> torch.Tensor:
        logits = lp / self.temperature  # (rows, vocab)
        if 0 < self.top_k < logits.size(1):
            kth = logits.topk(self.top_k, dim=1).values[:, -1:]  # (rows, 1)
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits, dim=1)
        return torch.multinomial(probs, 1, generator=self.gen).squeeze(1)  # (rows,)


@torch.inference_mode()
def greedy_search(
    model: SearchModel,
    src: torch.Tensor,
    src_lens: torch.Tensor,
    cfg: SearchConfig,
    pick=pick_greedy,
    with_attention: bool = False,
) -> list[list[Hypothesis]]:
    """src (batch, src_len), src_lens (batch,) CPU -> one hypothesis per sentence (score = log-prob)."""
    device = src.device
    mem, state = model.encode(src, src_lens)
    batch, src_len = src.shape
    limit = length_limits(src_lens, cfg).to(device)  # (batch,)
    steps = max_steps(limit)
    out = torch.full((batch, steps), PAD, dtype=torch.long, device=device)  # pieces, original rows
    logp = torch.zeros(batch, device=device)
    lengths = torch.zeros(batch, dtype=torch.long, device=device)
    attn_out = torch.zeros(batch, steps, src_len, device=device) if with_attention else None
    active = torch.arange(batch, device=device)  # original row of each running sentence
    tokens = torch.full((batch,), BOS, dtype=torch.long, device=device)
    for t in range(steps):
        lp, state, weights = model.decode_step(tokens, state, mem)  # (rows, vocab), (rows, src_len)
        history = out.index_select(0, active) if cfg.no_repeat_ngram else None
        lp = constrain(lp, t, limit, cfg, history)
        tokens = pick(lp)  # (rows,)
        out[active, t] = tokens
        logp.index_add_(0, active, lp.gather(1, tokens.unsqueeze(1)).squeeze(1))
        lengths[active] = t + 1
        if attn_out is not None:
            attn_out[active, t] = weights.float()
        done = (tokens == EOS).cpu()  # the one host sync per step
        if bool(done.all()):
            break
        if bool(done.any()):
            keep = (~done).nonzero().squeeze(1).to(device)
            active, limit, tokens = active[keep], limit[keep], tokens[keep]
            state, mem = state.select(keep), mem.select(keep)
    out, logp, lengths = out.cpu(), logp.cpu(), lengths.cpu()
    results = []
    for b in range(batch):
        n = int(lengths[b])
        toks = out[b, :n].tolist()
        if toks and toks[-1] == EOS:
            toks = toks[:-1]
        att = attn_out[b, :n].cpu() if attn_out is not None else None
        results.append([Hypothesis(toks, float(logp[b]), float(logp[b]), att)])
    return results
