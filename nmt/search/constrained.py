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
prefers. Without constraints nmt's ordinary beam search runs (``nmt/search/beam.py``).

A batch of sentences decodes together: each step runs the model once over the alive hypotheses
of every sentence (a sentence's rows are contiguous, and it may hold fewer than K), the device
keeps each row's 2K best pieces and the scores of the pieces its constraints want, and only
those few numbers go to the host, where each sentence fills its beam by bank. A sentence leaves
the batch when it is done. ``search.no_repeat_ngram`` applies; the coverage penalty does not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from nmt.config import SearchConfig
from nmt.data.tokenizer import BOS, EOS, PAD
from nmt.search.common import NEG_INF, Hypothesis, SearchModel, constrain, length_limits, length_norm, topk


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
    attention: list[torch.Tensor]  # (src_len,) per step


@dataclass
class _Sentence:
    """One sentence's search: its phrases, its length limit, its beam and its finished list."""

    phrases: list[list[int]]
    limit: int
    alive: list[_Hyp]
    finished: list[tuple[float, _Hyp, list[torch.Tensor]]] = field(default_factory=list)
    done: bool = False

    @property
    def total(self) -> int:
        return sum(len(p) for p in self.phrases)


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
    a list of target piece ids, at least one phrase) -> the ``cfg.nbest`` best hypotheses per
    sentence that contain them all.

    The whole batch decodes together: each step runs the model once over the alive hypotheses of
    every sentence (a sentence's rows are contiguous), picks each row's 2K best pieces and the
    scores of the pieces its constraints want on the device, and only those few numbers come to
    the host, where each sentence fills its beam by bank.
    """
    device = src.device
    K = max(cfg.beam_size, 1)
    n_keep = max(K, cfg.nbest)
    limits = length_limits(src_lens, cfg)  # (batch,) CPU
    sents = [
        _Sentence(
            phrases, int(limits[b]) + sum(len(p) for p in phrases), [_Hyp([], 0.0, _start(phrases), [])]
        )
        for b, phrases in enumerate(constraints)
    ]
    steps = max((s.limit for s in sents), default=0)
    first_mem, state = model.encode(src, src_lens)  # one row per sentence
    mem = first_mem
    owner = list(range(len(sents)))  # the sentence of each row of the state
    tokens = torch.full((len(sents),), BOS, dtype=torch.long, device=device)
    history = np.full((len(sents), steps), PAD, dtype=np.int64) if cfg.no_repeat_ngram else None
    for t in range(steps):
        before, before_mem = state, mem  # for completing a sentence that ends without its phrases
        lp, state, weights = model.decode_step(tokens, state, mem)  # (rows, V), (rows, S)
        rows = [h for s in _live(sents) for h in s.alive]  # the hypothesis of each row
        row_limits = torch.tensor([sents[b].limit for b in owner])
        hist = torch.from_numpy(history).to(device) if history is not None else None
        lp = constrain(lp.float(), t, row_limits, cfg, hist)
        unmet = [r for r, h in enumerate(rows) if not h.progress.all_met()]
        if unmet:  # a hypothesis ends only with every constraint written
            lp[torch.tensor(unmet, device=device), EOS] = NEG_INF
        lp += torch.tensor([h.lp for h in rows], dtype=lp.dtype, device=device).unsqueeze(1)
        top_lp, top_tok = topk(lp, min(2 * K, lp.size(1)))  # (rows, 2K): holds each sentence's 2K best
        wanted = [sorted(h.progress.wanted(sents[b].phrases, ordered)) for h, b in zip(rows, owner)]
        width = max(len(w) for w in wanted)
        want_tok = torch.tensor(
            [w + [PAD] * (width - len(w)) for w in wanted], dtype=torch.long, device=device
        )  # (rows, W)
        want_lp = lp.gather(1, want_tok)  # PAD scores NEG_INF: padding is never a candidate
        top_lp, top_tok, want_lp = top_lp.cpu().numpy(), top_tok.cpu().numpy(), want_lp.cpu().numpy()
        att = weights.float() if with_attention else None

        parents: list[int] = []  # the row each new hypothesis continues
        new_owner: list[int] = []
        r0 = 0
        for b, s in enumerate(sents):
            if s.done:
                continue
            n = len(s.alive)
            best: dict[tuple[int, int], float] = {}  # (hypothesis, piece) -> score
            advance: dict[tuple[int, int], float] = {}
            for i in range(n):
                r = r0 + i
                best.update(((i, int(tok)), float(v)) for v, tok in zip(top_lp[r], top_tok[r]))
                advance.update(((i, tok), float(v)) for v, tok in zip(want_lp[r], wanted[r]))
            row_att = [att[r0 + i] for i in range(n)] if att is not None else None
            chosen = _step(s, best, advance, K, n_keep, cfg, ordered, row_att)
            if chosen and t + 1 < s.limit:
                s.alive = [h for h, _ in chosen]
                parents += [r0 + i for _, i in chosen]
                new_owner += [b] * len(chosen)
            else:
                s.done = True
                if not any(f[1].progress.all_met() for f in s.finished):
                    sel = torch.arange(r0, r0 + n, device=device)
                    s.finished = [
                        _complete(
                            model,
                            before_mem.select(sel),
                            before.select(sel),
                            s,
                            ordered,
                            cfg,
                            with_attention,
                            device,
                        )
                    ]
            r0 += n
        if not parents:
            break
        picked = torch.tensor(parents, device=device)
        state = state.select(picked)
        if new_owner != owner:
            owner = new_owner
            mem = first_mem.select(torch.tensor(owner, device=device))
        new_tokens = [h.tokens[-1] for s in _live(sents) for h in s.alive]
        tokens = torch.tensor(new_tokens, device=device)
        if history is not None:
            history = history[parents]
            history[:, t] = new_tokens
    return [
        [
            Hypothesis(h.tokens, score, h.lp, torch.stack(att) if att else None)
            for score, h, att in s.finished[: cfg.nbest]
        ]
        for s in sents
    ]


def _start(phrases: list[list[int]]) -> Progress:
    return Progress(tuple(False for _ in phrases))


def _live(sents: list[_Sentence]) -> list[_Sentence]:
    return [s for s in sents if not s.done]


def _step(
    s: _Sentence,
    best: dict[tuple[int, int], float],
    advance: dict[tuple[int, int], float],
    K: int,
    n_keep: int,
    cfg: SearchConfig,
    ordered: bool,
    weights: list[torch.Tensor] | None,
) -> list[tuple[_Hyp, int]]:
    """One sentence's step on the host. ``best[(i, tok)]``: the total log-probability of
    hypothesis i continued by tok, for each hypothesis's 2K best pieces; ``advance``: the same for
    the pieces that advance its constraints. The candidates are the sentence's 2K best overall,
    each hypothesis's best, and every advancing piece. Finishes the EOS candidates, then fills the
    beam by bank -> the new hypotheses with the row each continues (empty: the sentence is done)."""
    phrases = s.phrases
    ranked = sorted(best.items(), key=lambda kv: -kv[1])
    cands = dict(ranked[: 2 * K])  # the sentence's 2K best continuations
    rows_in = {i for i, _ in cands}
    for (i, tok), sc in ranked:  # each hypothesis's best
        if i not in rows_in:
            cands[(i, tok)] = sc
            rows_in.add(i)
    cands.update(advance)
    banks: dict[int, list[tuple]] = {}
    for (i, tok), sc in cands.items():
        h = s.alive[i]
        if sc <= NEG_INF:
            continue
        if tok == EOS:
            att = h.attention + [weights[i]] if weights is not None else []
            s.finished.append(
                (sc / float(length_norm(len(h.tokens) + 1, cfg)), _Hyp(h.tokens, sc, h.progress, []), att)
            )
            continue
        progress = h.progress.after(tok, phrases, ordered)
        banks.setdefault(progress.pieces_met(phrases), []).append((sc, i, tok, progress))
    for bank in banks.values():
        bank.sort(key=lambda c: -c[0])
    s.finished.sort(key=lambda f: -f[0])
    del s.finished[n_keep:]
    chosen = allocate(banks, K, s.total)
    if not chosen:
        return []
    # done: the n-th best finished beats what any alive hypothesis could still reach
    if len(s.finished) >= cfg.nbest:
        reachable = max(c[0] for c in chosen) / float(length_norm(s.limit, cfg))
        if s.finished[cfg.nbest - 1][0] >= reachable:
            return []
    return [
        (
            _Hyp(
                s.alive[i].tokens + [tok],
                sc,
                progress,
                s.alive[i].attention + [weights[i]] if weights is not None else [],
            ),
            i,
        )
        for sc, i, tok, progress in chosen
    ]


def _complete(
    model: SearchModel,
    mem: object,
    state: object,
    s: _Sentence,
    ordered: bool,
    cfg: SearchConfig,
    with_attention: bool,
    device: torch.device,
) -> tuple[float, _Hyp, list[torch.Tensor]]:
    """The best alive hypothesis of the highest bank, made to write the constraint pieces it still
    lacks and EOS (each scored by the model): the guarantee, when the limit came first.
    ``mem`` and ``state``: the rows of ``s.alive``, before their last piece was read."""
    phrases = s.phrases
    i, h = max(enumerate(s.alive), key=lambda a: (a[1].progress.pieces_met(phrases), a[1].lp))
    rows = torch.tensor([i], device=device)
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
    return lp / float(length_norm(len(tokens) + 1, cfg)), _Hyp(tokens, lp, done, []), att
