"""Lexically constrained beam search: every given target phrase appears in the output.

Dynamic beam allocation (Post & Vilar 2018, "Fast Lexically Constrained Decoding with Dynamic
Beam Allocation for Neural Machine Translation"). A hypothesis carries how far it has got through
its constraints: which phrases it has written whole, and how much of the phrase it is writing
now (a piece that breaks a phrase off starts that phrase over). Each step gathers, for the K
alive hypotheses of a sentence, three sets of continuations: the 2K best overall, for each
hypothesis the pieces that advance one of its constraints (the next piece of the phrase it is in,
or the first piece of a phrase it has not written), and each hypothesis's own best piece. They are
grouped into banks by the number of constraint pieces met, and the beam's K places are shared
among the banks (highest banks first, places a bank cannot fill going to the best candidates left),
so hypotheses that have met more constraints are never crowded out by ones that score higher
having met fewer. EOS is allowed only once every constraint is met, and only such hypotheses
finish.

``ordered=True`` asks for the phrases in the given order (a phrase may start only once the one
before it is written). The length limit grows by the constraints' pieces; a sentence that reaches
it with no finished hypothesis ends with the best alive one of the highest bank, completed with
the pieces it still lacks (scored by the model), so the guarantee holds whatever the model
prefers. Without constraints nmt's ordinary beam search runs (``nmt/search/beam.py``): this one
decodes a sentence at a time, over the K rows of its beam.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nmt.config import SearchConfig
from nmt.data.tokenizer import BOS, EOS
from nmt.search.common import NEG_INF, Hypothesis, SearchModel, constrain, length_limits, length_norm


@dataclass(frozen=True)
class Progress:
    """How far a hypothesis has got: the phrases written whole, and the one under way."""

    met: tuple[bool, ...]
    phrase: int = -1  # the phrase being written (-1: none)
    done: int = 0  # its pieces written so far

    def pieces_met(self, phrases: list[list[int]]) -> int:
        """Constraint pieces written: the bank this hypothesis belongs to."""
        return sum(len(p) for p, m in zip(phrases, self.met) if m) + self.done

    def all_met(self) -> bool:
        return all(self.met)

    def allowed_starts(self, phrases: list[list[int]], ordered: bool) -> list[int]:
        """The phrases this hypothesis may start now (the next unmet one only, if ordered)."""
        unmet = [i for i, m in enumerate(self.met) if not m]
        return unmet[:1] if ordered else unmet

    def wanted(self, phrases: list[list[int]], ordered: bool) -> set[int]:
        """The pieces that advance a constraint: the next piece of the phrase under way, or the
        first piece of a phrase that may start."""
        if self.phrase >= 0:
            return {phrases[self.phrase][self.done]}
        return {phrases[i][0] for i in self.allowed_starts(phrases, ordered)}

    def after(self, tok: int, phrases: list[list[int]], ordered: bool) -> Progress:
        """The progress once ``tok`` is written."""
        if self.phrase >= 0:
            phrase = phrases[self.phrase]
            if tok == phrase[self.done]:
                if self.done + 1 == len(phrase):
                    return Progress(_set(self.met, self.phrase))
                return Progress(self.met, self.phrase, self.done + 1)
            base = Progress(self.met)  # the phrase is broken off: it starts over
        else:
            base = self
        for i in base.allowed_starts(phrases, ordered):
            if phrases[i][0] == tok:
                return Progress(_set(base.met, i)) if len(phrases[i]) == 1 else Progress(base.met, i, 1)
        return base

    def missing(self, phrases: list[list[int]], ordered: bool) -> list[int]:
        """The pieces that complete every constraint from here: the phrase under way, then the others."""
        out = phrases[self.phrase][self.done :] if self.phrase >= 0 else []
        met = _set(self.met, self.phrase) if self.phrase >= 0 else self.met
        for i, m in enumerate(met):
            if not m:
                out = out + phrases[i]
        return out


def _set(met: tuple[bool, ...], i: int) -> tuple[bool, ...]:
    return tuple(m or j == i for j, m in enumerate(met))


@dataclass
class _Hyp:
    tokens: list[int]
    lp: float  # sum of log-probabilities so far
    progress: Progress
    row: int  # its row in the beam's state (for the next decode step)
    attention: list[torch.Tensor]  # (src_len,) per step


def allocate(banks: dict[int, list[tuple]], k: int, top_bank: int) -> list[tuple]:
    """K places shared among banks (bank -> candidates, best first): an equal share each, the
    remainder to the highest banks; places a bank cannot fill go to the best candidates left."""
    n_banks = top_bank + 1
    share, extra = divmod(k, n_banks)
    chosen: list[tuple] = []
    left: list[tuple] = []
    for rank, bank in enumerate(range(top_bank, -1, -1)):  # highest bank first
        size = share + (1 if rank < extra else 0)
        cands = banks.get(bank, [])
        chosen += cands[:size]
        left += cands[size:]
    if len(chosen) < k:
        left.sort(key=lambda c: -c[0])
        chosen += left[: k - len(chosen)]
    return chosen


@torch.no_grad()
def constrained_search(
    model: SearchModel,
    src: torch.Tensor,
    src_lens: torch.Tensor,
    cfg: SearchConfig,
    constraints: list[list[list[int]]],
    ordered: bool = False,
    with_attention: bool = False,
) -> list[list[Hypothesis]]:
    """src (batch, src_len), src_lens (batch,) CPU, ``constraints[b]``: sentence b's phrases (each
    a list of target piece ids) -> the ``cfg.nbest`` best hypotheses per sentence that contain them all."""
    out = []
    for b in range(src.size(0)):
        n = int(src_lens[b])
        out.append(
            _one(model, src[b : b + 1, :n], src_lens[b : b + 1], cfg, constraints[b], ordered, with_attention)
        )
    return out


def _one(
    model: SearchModel,
    src: torch.Tensor,
    src_lens: torch.Tensor,
    cfg: SearchConfig,
    phrases: list[list[int]],
    ordered: bool,
    with_attention: bool,
) -> list[Hypothesis]:
    device = src.device
    K = max(cfg.beam_size, 1)
    total = sum(len(p) for p in phrases)
    limit = int(length_limits(src_lens, cfg)[0]) + total
    one, state = model.encode(src, src_lens)  # the encoder's memory: one row, shared by the beam
    mem = one
    alive = [_Hyp([], 0.0, Progress(tuple(False for _ in phrases)), 0, [])]
    tokens = torch.tensor([BOS], device=device)
    finished: list[tuple[float, _Hyp, list[torch.Tensor]]] = []  # (score, hypothesis, attention)
    limit_rows = torch.tensor([limit])
    mems = {1: one}  # the memory repeated for n rows, made once per n
    for t in range(limit):
        lp, state, weights = model.decode_step(tokens, state, mem)  # (rows, V), (rows, S)
        lp = constrain(lp.float(), t, limit_rows.expand(lp.size(0)), cfg, None)
        unmet = [i for i, h in enumerate(alive) if not h.progress.all_met()]
        if unmet:
            lp[unmet, EOS] = NEG_INF  # a hypothesis ends only with every constraint written
        V = lp.size(1)
        # the rest of the step is bookkeeping over a few candidates: in numpy, on the host
        sc = (lp + torch.tensor([h.lp for h in alive], device=device).unsqueeze(1)).cpu().numpy()  # (rows, V)
        flat = sc.reshape(-1)
        n_top = min(2 * K, flat.size)
        top = np.argpartition(-flat, n_top - 1)[:n_top] if n_top < flat.size else np.arange(flat.size)
        cands: set[tuple[int, int]] = {(int(c) // V, int(c) % V) for c in top if flat[c] > NEG_INF}
        cands.update((i, int(tok)) for i, tok in enumerate(sc.argmax(1)))
        for i, h in enumerate(alive):
            cands.update((i, tok) for tok in h.progress.wanted(phrases, ordered))
        banks: dict[int, list[tuple]] = {}
        for i, tok in cands:
            s = float(sc[i, tok])
            if s <= NEG_INF:
                continue
            h = alive[i]
            if tok == EOS:
                score = s / float(length_norm(len(h.tokens) + 1, cfg))
                att = h.attention + [weights[i].float()] if with_attention else []
                finished.append((score, _Hyp(h.tokens, s, h.progress, i, []), att))
                continue
            progress = h.progress.after(tok, phrases, ordered)
            banks.setdefault(progress.pieces_met(phrases), []).append((s, i, tok, progress))
        for bank in banks.values():
            bank.sort(key=lambda c: -c[0])
        finished.sort(key=lambda f: -f[0])
        finished = finished[: max(K, cfg.nbest)]
        chosen = allocate(banks, K, total)
        if not chosen:
            break
        # done: the n-th best finished beats what any alive hypothesis could still reach
        if len(finished) >= cfg.nbest:
            reachable = max(c[0] for c in chosen) / float(length_norm(limit, cfg))
            if finished[cfg.nbest - 1][0] >= reachable:
                break
        rows = torch.tensor([c[1] for c in chosen], device=device)
        alive = [
            _Hyp(
                alive[i].tokens + [tok],
                s,
                progress,
                k,
                alive[i].attention + [weights[i].float()] if with_attention else [],
            )
            for k, (s, i, tok, progress) in enumerate(chosen)
        ]
        state = state.select(rows)
        if len(chosen) not in mems:
            mems[len(chosen)] = one.select(torch.zeros(len(chosen), dtype=torch.long, device=device))
        mem = mems[len(chosen)]
        tokens = torch.tensor([c[2] for c in chosen], device=device)
    if not any(f[1].progress.all_met() for f in finished):
        finished = [_complete(model, mem, state, alive, phrases, ordered, cfg, with_attention, device)]
    return [
        Hypothesis(h.tokens, score, h.lp, torch.stack(att) if att else None)
        for score, h, att in finished[: cfg.nbest]
    ]


def _complete(
    model: SearchModel,
    mem: object,
    state: object,
    alive: list[_Hyp],
    phrases: list[list[int]],
    ordered: bool,
    cfg: SearchConfig,
    with_attention: bool,
    device: torch.device,
) -> tuple[float, _Hyp, list[torch.Tensor]]:
    """The best alive hypothesis of the highest bank, made to write the constraint pieces it still
    lacks and EOS (each scored by the model): the guarantee, when the limit came first."""
    h = max(alive, key=lambda a: (a.progress.pieces_met(phrases), a.lp))
    rows = torch.tensor([h.row], device=device)
    state, mem = state.select(rows), mem.select(rows)  # type: ignore[attr-defined]
    tokens, lp, att = list(h.tokens), h.lp, list(h.attention)
    last = torch.tensor([tokens[-1] if tokens else BOS], device=device)
    for tok in [*h.progress.missing(phrases, ordered), EOS]:
        step_lp, state, weights = model.decode_step(last, state, mem)
        lp += float(step_lp[0, tok].float())
        if with_attention:
            att.append(weights[0].float())
        if tok != EOS:
            tokens.append(tok)
        last = torch.tensor([tok], device=device)
    done = Progress(tuple(True for _ in phrases))
    return lp / float(length_norm(len(tokens) + 1, cfg)), _Hyp(tokens, lp, done, 0, []), att
