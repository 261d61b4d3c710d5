"""Batched beam search: all sentences x all beams in one tensor per step, no per-sentence loop.

Each step expands the K alive hypotheses of every sentence over the vocabulary and keeps the 2K
best continuations by log-probability. A continuation ending in EOS among the first K is finished
(as in fairseq): it is scored with the length penalty (none, average, GNMT) and the GNMT coverage
penalty and merged into the sentence's K-best finished list. The K best continuations not ending
in EOS stay alive. Without penalties, beam 1 is exactly greedy search; with a length penalty it
may go on past greedy's EOS and return a longer hypothesis that scores better under the penalty.

A sentence is done (``search.stop=exact``) when its n-th best finished score cannot be beaten:
log-probabilities only fall as a hypothesis grows and the penalties are bounded (length at most
the limit, coverage penalty <= 0), so an alive hypothesis can at best reach its log-probability
divided by the length penalty at the limit. With a length penalty that bound is loose and the
search runs long; ``search.stop=first_k`` ends a sentence once K hypotheses have finished, as
fairseq does: fewer steps, and not exact. Done sentences leave the batch; the loop ends when none is left. The one
host sync per step is that check.
"""

from __future__ import annotations

import math

import torch

from nmt.config import BeamStop, SearchConfig
from nmt.data.tokenizer import BOS, EOS, PAD
from nmt.search.common import (
    NEG_INF,
    Hypothesis,
    SearchModel,
    constrain,
    coverage_penalty,
    gap_at,
    length_limits,
    length_norm,
    lower_margins,
    max_steps,
    sorted_gap,
    topk,
)


def _take(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x (batch, k, ...) indexed along dim 1 by idx (batch, m) -> (batch, m, ...)."""
    view = idx.view(*idx.shape, *([1] * (x.dim() - 2))).expand(*idx.shape, *x.shape[2:])
    return x.gather(1, view)


@torch.no_grad()  # not inference_mode: under it, autocast re-casts every weight at every step
def beam_search(
    model: SearchModel,
    src: torch.Tensor,
    src_lens: torch.Tensor,
    cfg: SearchConfig,
    with_attention: bool = False,
    margins: torch.Tensor | None = None,
) -> list[list[Hypothesis]]:
    """src (batch, src_len), src_lens (batch,) CPU -> the ``cfg.nbest`` best hypotheses per sentence, best first.

    Scores are kept in the dtype of the model's log-probabilities (float32, or float64 for a
    float64 model). ``margins`` (batch,): if given, lowered in place to the smallest gap between
    two scores the search ranked for each sentence (see ``nmt.search.common``).
    """
    device = src.device
    K, n_best, beta = cfg.beam_size, cfg.nbest, cfg.coverage_penalty
    mem, state = model.encode(src, src_lens)
    B0, S = src.shape
    limit_cpu = length_limits(src_lens, cfg)  # (B0,) on the CPU, for the constraints
    limit = limit_cpu.to(device)  # (B0,)
    norm_at_limit = length_norm(limit, cfg)  # (B0,) the largest length penalty each can reach
    cpu = device.type == "cpu"
    T = max_steps(limit_cpu)
    src_mask = mem.mask  # (B0, S)
    active = torch.arange(B0, device=device)  # original sentence of each running row of the batch
    # the first step has one live hypothesis per sentence: run it once per sentence, then give
    # each sentence K rows (the K-1 copies start at -inf, so they never win)
    bos = torch.full((B0,), BOS, dtype=torch.long, device=device)  # (B0,)
    lp, state, weights = model.decode_step(bos, state, mem)  # (B0, V), (B0, S)
    rows = torch.arange(B0, device=device).repeat_interleave(K)  # (B0*K,)
    mem, state = mem.select(rows), state.select(rows)  # B0*K rows each
    lp, weights = lp.index_select(0, rows), weights.index_select(0, rows)  # (B0*K, V), (B0*K, S)
    tokens = bos  # replaced by each step's picks before the next decode_step
    dtype = lp.dtype

    alive_lp = torch.full((B0, K), NEG_INF, dtype=dtype, device=device)
    alive_lp[:, 0] = 0.0  # one live hypothesis at the start
    alive_seq = torch.full((B0, K, T), PAD, dtype=torch.long, device=device)
    alive_cov = torch.zeros(B0, K, S, dtype=dtype, device=device) if beta > 0 else None
    alive_att = torch.zeros(B0, K, T, S, device=device) if with_attention else None
    fin_score = torch.full(
        (B0, K), NEG_INF, dtype=dtype, device=device
    )  # finished lists, by original sentence
    fin_lp = torch.full((B0, K), NEG_INF, dtype=dtype, device=device)
    fin_len = torch.zeros(B0, K, dtype=torch.long, device=device)
    fin_seq = torch.full((B0, K, T), PAD, dtype=torch.long, device=device)
    fin_att = torch.zeros(B0, K, T, S, device=device) if with_attention else None
    track = margins is not None  # rank one more candidate at each cut to measure the gap at it

    for t in range(T):
        B = active.numel()
        if t > 0:
            lp, state, weights = model.decode_step(tokens, state, mem)  # (B*K, V), (B*K, S)
        V = lp.size(1)
        history = alive_seq.view(B * K, T) if cfg.no_repeat_ngram else None
        lp = constrain(lp, t, limit_cpu.repeat_interleave(K), cfg, history)
        flat = lp.view(B, K, V).add_(alive_lp.unsqueeze(2)).view(B, K * V)  # (B, K*V), in lp's memory
        cand_lp, cand = topk(flat, 2 * K + track)  # (B, 2K)
        if track:  # which 2K are kept, and which EOS are among the first K
            eos_at_k = (cand[:, K - 1 : K + 1] % V == EOS).any(1)  # (B,)
            lower_margins(margins, active, gap_at(cand_lp, 2 * K))
            lower_margins(margins, active, gap_at(cand_lp, K).masked_fill(~eos_at_k, math.inf))
            cand_lp, cand = cand_lp[:, : 2 * K], cand[:, : 2 * K]
        origin, tok = cand // V, cand % V  # beam each continuation extends, its new piece
        cand_seq = _take(alive_seq, origin)  # (B, 2K, T)
        cand_seq[:, :, t] = tok
        weights = weights.view(B, K, S)
        cand_cov = (
            _take(alive_cov + weights.to(dtype), origin) if alive_cov is not None else None
        )  # (B, 2K, S)
        cand_att = None
        if alive_att is not None:
            cand_att = _take(alive_att, origin)  # (B, 2K, T, S)
            cand_att[:, :, t] = _take(weights.float(), origin)

        # finish: EOS continuations among the first K, merged into the K-best finished lists
        is_eos = tok == EOS  # (B, 2K)
        eos_first_k = is_eos.clone()
        eos_first_k[:, K:] = False
        # On a CPU most steps finish nothing and the merge (some 30 operations) is skipped: it would
        # leave the lists as they are. On a GPU the test would cost a sync of its own.
        if not cpu or bool(eos_first_k.any()):
            score = cand_lp / length_norm(t + 1, cfg)
            if cand_cov is not None:
                score = score + coverage_penalty(cand_cov, src_mask[active].unsqueeze(1), beta)
            score = score.masked_fill(~eos_first_k, NEG_INF)
            merged, pick = torch.cat([fin_score[active], score], 1).topk(
                K + track, dim=1
            )  # (B, K) of (B, 3K)
            if track:  # the finished lists and their order
                lower_margins(margins, active, sorted_gap(merged))
                merged, pick = merged[:, :K], pick[:, :K]
            fin_score[active] = merged
            fin_lp[active] = _take(torch.cat([fin_lp[active], cand_lp], 1), pick)
            fin_len[active] = _take(torch.cat([fin_len[active], torch.full_like(tok, t + 1)], 1), pick)
            fin_seq[active] = _take(torch.cat([fin_seq[active], cand_seq], 1), pick)
            if fin_att is not None:
                fin_att[active] = _take(torch.cat([fin_att[active], cand_att], 1), pick)

        # stay alive: the K best continuations that do not end in EOS
        alive_lp, pick = cand_lp.masked_fill(is_eos, NEG_INF).topk(K + track, dim=1)  # (B, K)
        if track:  # which K stay alive
            lower_margins(margins, active, gap_at(alive_lp, K))
            alive_lp, pick = alive_lp[:, :K], pick[:, :K]
        alive_seq = _take(cand_seq, pick)
        if cand_cov is not None:
            alive_cov = _take(cand_cov, pick)
        if cand_att is not None:
            alive_att = _take(cand_att, pick)
        beam_rows = (torch.arange(B, device=device).unsqueeze(1) * K + origin.gather(1, pick)).view(-1)
        state = state.select(beam_rows)
        tokens = tok.gather(1, pick).view(-1)  # (B*K,)

        # done (exact): the n-th best finished beats the best any alive hypothesis could still
        # reach; (first_k): K hypotheses have finished (the finished list is full)
        if cfg.stop == BeamStop.first_k:
            settled = torch.isfinite(fin_score[active, K - 1])  # (B,)
        else:
            best_reachable = alive_lp.max(1).values / norm_at_limit  # (B,)
            nth = fin_score[active, n_best - 1]  # (B,)
            settled = nth >= best_reachable
            if track:
                both = torch.isfinite(nth) & torch.isfinite(best_reachable)
                gap = torch.where(both, (nth - best_reachable).abs(), torch.full_like(nth, math.inf))
                lower_margins(margins, active, gap)
        done = (settled | (t + 1 >= limit)).cpu()
        if bool(done.all()):
            break
        if bool(done.any()):
            keep_cpu = (~done).nonzero().squeeze(1)
            keep = keep_cpu.to(device)
            keep_rows = (keep.unsqueeze(1) * K + torch.arange(K, device=device)).view(-1)
            active, limit, limit_cpu = active[keep], limit[keep], limit_cpu[keep_cpu]
            norm_at_limit = norm_at_limit[keep] if torch.is_tensor(norm_at_limit) else norm_at_limit
            alive_lp, alive_seq = alive_lp[keep], alive_seq[keep]
            alive_cov = alive_cov[keep] if alive_cov is not None else None
            alive_att = alive_att[keep] if alive_att is not None else None
            state, mem, tokens = state.select(keep_rows), mem.select(keep_rows), tokens[keep_rows]

    return _results(fin_score, fin_lp, fin_len, fin_seq, fin_att, n_best)


def _results(
    score: torch.Tensor,
    lp: torch.Tensor,
    length: torch.Tensor,
    seq: torch.Tensor,
    att: torch.Tensor | None,
    n_best: int,
) -> list[list[Hypothesis]]:
    score, lp, length, seq = score.cpu(), lp.cpu(), length.cpu(), seq.cpu()
    att = att.cpu() if att is not None else None
    out = []
    for b in range(score.size(0)):
        hyps = []
        for k in range(n_best):
            if score[b, k] == NEG_INF:
                break
            n = int(length[b, k])
            hyps.append(
                Hypothesis(
                    seq[b, k, : n - 1].tolist(),
                    float(score[b, k]),
                    float(lp[b, k]),
                    att[b, k, :n] if att is not None else None,
                )
            )
        out.append(hyps or [Hypothesis([], NEG_INF, NEG_INF)])
    return out
