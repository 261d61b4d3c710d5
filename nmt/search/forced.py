"""Teacher forcing through the search interface: a source and a given target in, per-step
log-probabilities and attention out (for scoring a translation, or finding what each target
piece attended to, as unknown-word replacement needs)."""

from __future__ import annotations

import torch

from nmt.data.batching import pad
from nmt.data.tokenizer import BOS, EOS, PAD
from nmt.search.common import SearchModel


@torch.no_grad()  # not inference_mode: under it, autocast re-casts every weight at every step
def force(
    model: SearchModel, src: list[list[int]], tgt: list[list[int]], device: torch.device
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """For each pair, the log-probability of every target piece and of EOS ((T + 1,)) and the
    attention of each of those steps over the source pieces ((T + 1, S)), in one batch."""
    if not src:
        return []
    order = sorted(range(len(src)), key=lambda i: -len(src[i]))  # packing wants lengths sorted
    src_t = pad([src[i] for i in order]).to(device)  # (batch, src_len)
    src_lens = torch.tensor([len(src[i]) for i in order])
    steps = max(len(tgt[i]) for i in order) + 1
    inputs = torch.full((len(order), steps), PAD, dtype=torch.long)  # (batch, steps): BOS y1 .. yn
    gold = torch.full((len(order), steps), PAD, dtype=torch.long)  # (batch, steps): y1 .. yn EOS
    for r, i in enumerate(order):
        inputs[r, 0] = BOS
        inputs[r, 1 : len(tgt[i]) + 1] = torch.tensor(tgt[i], dtype=torch.long)
        gold[r, : len(tgt[i])] = torch.tensor(tgt[i], dtype=torch.long)
        gold[r, len(tgt[i])] = EOS
    inputs, gold = inputs.to(device), gold.to(device)
    mem, state = model.encode(src_t, src_lens)
    lps, atts = [], []
    for t in range(steps):
        lp, state, weights = model.decode_step(inputs[:, t], state, mem)  # (batch, vocab), (batch, src_len)
        lps.append(lp.gather(1, gold[:, t : t + 1].clamp(min=0)).squeeze(1))
        atts.append(weights.float())
    lp_all, att_all = (
        torch.stack(lps, 1).cpu(),
        torch.stack(atts, 1).cpu(),
    )  # (batch, steps), (batch, steps, src_len)
    out: list[tuple[torch.Tensor, torch.Tensor]] = [None] * len(src)  # type: ignore[list-item]
    for r, i in enumerate(order):
        n = len(tgt[i]) + 1
        out[i] = (lp_all[r, :n], att_all[r, :n, : len(src[i])])
    return out
