"""What every search shares: the model interface, hypotheses, length limits, step constraints, scores.

A search sees the model only through ``encode`` and ``decode_step`` (``SearchModel``); the memory
and state they return need a ``select(rows)``. Log-probabilities are float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from nmt.config import LengthPenalty, SearchConfig
from nmt.data.tokenizer import BOS, EOS, PAD

NEG_INF = float("-inf")


class SearchModel(Protocol):
    def encode(self, src: torch.Tensor, src_lens: torch.Tensor) -> tuple[Any, Any]: ...

    def decode_step(
        self, tokens: torch.Tensor, state: Any, mem: Any
    ) -> tuple[torch.Tensor, Any, torch.Tensor]: ...


@dataclass
class Hypothesis:
    tokens: list[int]  # target piece ids, without BOS and EOS
    score: float  # what the search ranks by: log_prob after length and coverage penalties
    log_prob: float  # sum of the model's log-probabilities of the pieces and EOS
    attention: torch.Tensor | None = None  # (len(tokens) + 1, src_len) weights per output step (EOS last)


def length_limits(src_lens: torch.Tensor, cfg: SearchConfig) -> torch.Tensor:
    """Maximum output pieces (EOS included) per sentence: floor(a * src_len + b), at least 1."""
    return (cfg.max_len_a * src_lens.double() + cfg.max_len_b).floor().long().clamp(min=1)


def length_norm(length: torch.Tensor | int, cfg: SearchConfig) -> torch.Tensor | float:
    """The divisor of the log-probability for a hypothesis of ``length`` pieces (EOS included)."""
    if cfg.length_penalty == LengthPenalty.none:
        return 1.0
    if cfg.length_penalty == LengthPenalty.average:
        return length if isinstance(length, int) else length.double()
    # GNMT (Wu et al. 2016, eq. 14): lp(Y) = (5 + |Y|)^alpha / (5 + 1)^alpha
    if isinstance(length, int):
        return ((5.0 + length) / 6.0) ** cfg.alpha
    return ((5.0 + length.double()) / 6.0) ** cfg.alpha


def coverage_penalty(coverage: torch.Tensor, src_mask: torch.Tensor, beta: float) -> torch.Tensor:
    """GNMT (Wu et al. 2016, eq. 14): cp = beta * sum_i log(min(sum_j p_ij, 1)) over source positions i.

    coverage (..., src_len): attention summed over the output steps; src_mask (..., src_len).
    The sum is clamped at 1e-6 so a never-attended position costs beta * log(1e-6), not -inf.
    """
    cp = torch.log(coverage.clamp(min=1e-6, max=1.0)).masked_fill(~src_mask, 0.0).sum(-1)
    return beta * cp


def constrain(
    lp: torch.Tensor, step: int, limit: torch.Tensor, cfg: SearchConfig, history: torch.Tensor | None
) -> torch.Tensor:
    """Apply the step's constraints to log-probs lp (rows, vocab), in place, and return it.

    - no EOS before ``cfg.min_len`` pieces; PAD and BOS are never produced;
    - at a row's limit (``step + 1 == limit``) only EOS (with its model log-probability);
    - ``cfg.no_repeat_ngram`` = n: no piece that would repeat an n-gram of ``history`` (rows, >= step).

    ``limit`` (rows,) lives on the CPU: the rows at their limit are found without a device sync,
    and only those rows are rewritten (a pass over every row's vocabulary costs as much as the
    output layer's product on a CPU).
    """
    at_limit = torch.nonzero(step + 1 >= limit).squeeze(1).to(lp.device)  # rows that must end now
    eos_at_limit = lp[at_limit, EOS].clone() if at_limit.numel() else None
    lp[:, PAD] = NEG_INF
    lp[:, BOS] = NEG_INF
    if step < cfg.min_len:
        lp[:, EOS] = NEG_INF
    n = cfg.no_repeat_ngram
    if n > 0 and history is not None and step >= n:
        seq = history[:, :step]  # (rows, step) pieces so far
        grams = seq.unfold(1, n, 1)  # (rows, step - n + 1, n)
        prefix = seq[:, step - n + 1 :]  # (rows, n - 1) the last n-1 pieces
        match = (grams[:, :, : n - 1] == prefix.unsqueeze(1)).all(-1)  # (rows, step - n + 1)
        banned = torch.where(match, grams[:, :, n - 1], torch.full_like(grams[:, :, n - 1], PAD))
        lp.scatter_(1, banned, NEG_INF)
    if eos_at_limit is not None:
        lp[at_limit] = NEG_INF
        lp[at_limit, EOS] = eos_at_limit
    return lp


def topk(x: torch.Tensor, k: int, chunk: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """``x.topk(k, dim=1)`` for (rows, n) scores with n large and k small, several times faster on a
    CPU: the k best lie in the k chunks of ``chunk`` scores with the best maxima (any chunk holding
    one of them has a maximum at least the k-th best, and at most k chunks do), so one max per chunk
    and a top-k over k*chunk candidates find them. The same values; among equal scores the indices
    may differ from ``torch.topk``'s, which leaves ties in no particular order either."""
    rows, n = x.shape
    if n < 8 * chunk or k * chunk >= n:
        return x.topk(k, dim=1)
    # a chunk size that divides n (no padding copy) and is a multiple of 16 (vectorised maxima)
    sizes = sorted(range(chunk // 2, 2 * chunk + 1, 16), key=lambda c: abs(c - chunk))
    chunk = next((c for c in sizes if n % c == 0), chunk)
    pad = -n % chunk
    if pad:
        x = torch.cat([x, x.new_full((rows, pad), NEG_INF)], 1)
    blocks = x.view(rows, -1, chunk)  # (rows, n/chunk, chunk)
    best_blocks = blocks.amax(2).topk(k, dim=1).indices  # (rows, k)
    cand = blocks.gather(1, best_blocks.unsqueeze(2).expand(rows, k, chunk)).view(rows, k * chunk)
    values, j = cand.topk(k, dim=1)  # (rows, k)
    return values, best_blocks.gather(1, j // chunk) * chunk + j % chunk


def max_steps(limits: torch.Tensor) -> int:
    return int(limits.max()) if limits.numel() else 0


# ----------------------------------------------------------------------------- decision margins
# A search decides by comparing scores. Where two of them are closer than the arithmetic's
# rounding error, another machine (another CPU's kernels, a GPU, another batch shape) may decide
# the other way. The searches can report, per sentence, the smallest gap they decided on.


def top2_gap(scores: torch.Tensor) -> torch.Tensor:
    """(rows, n) decision scores -> (rows,) gap between the best and the runner-up (inf if none)."""
    top = scores.topk(2, dim=-1).values  # (rows, 2)
    return torch.where(torch.isfinite(top[:, 1]), top[:, 0] - top[:, 1], torch.full_like(top[:, 0], math.inf))


def sorted_gap(values: torch.Tensor) -> torch.Tensor:
    """(rows, n) scores sorted best first -> (rows,) smallest gap between neighbours, both finite."""
    gaps = values[:, :-1] - values[:, 1:]  # (rows, n - 1)
    return gaps.masked_fill(~torch.isfinite(values[:, 1:]), math.inf).amin(1)


def gap_at(values: torch.Tensor, n: int) -> torch.Tensor:
    """(rows, > n) scores sorted best first -> (rows,) gap between the n-th and the (n+1)-th, the cut
    of a top-n selection (inf where the (n+1)-th is -inf: nothing competes for the last place)."""
    below = values[:, n]
    return torch.where(torch.isfinite(below), values[:, n - 1] - below, torch.full_like(below, math.inf))


def lower_margins(margins: torch.Tensor, rows: torch.Tensor, gaps: torch.Tensor) -> None:
    """margins[rows] = min(margins[rows], gaps), in place (``rows`` are distinct)."""
    rows = rows.to(margins.device)
    margins[rows] = torch.minimum(margins[rows], gaps.to(margins.device, margins.dtype))
