"""A scripted stand-in for Seq2Seq: next-piece probabilities and attention set by hand.

The search sees a model only through ``encode(src, src_lens) -> (mem, state)`` and
``decode_step(tokens, state, mem) -> (log_probs, state, attention)`` (``nmt.search.common.SearchModel``).
``FakeModel`` implements exactly that. The state keeps the pieces generated so far as a
``(rows, t)`` tensor, so the distribution of the next piece is a plain Python function of the
prefix; the first source piece of a sentence picks the *scenario* (the function used). Tests can
then compute every hypothesis and score by hand.

Vocabulary: PAD=0, UNK=1, BOS=2, EOS=3, real pieces 4..9 (``VOCAB`` = 10).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from nmt.data.tokenizer import BOS, EOS, PAD

VOCAB = 10
Prefix = tuple[int, ...]
Distribution = dict[int, float]  # piece -> probability; pieces not listed have probability 0
# attention over the real source positions for the step that follows ``prefix`` (None: uniform)
AttentionFn = Callable[[Prefix, int], list[float] | None]


class FakeMemory(NamedTuple):
    src: torch.Tensor  # (rows, src_len) source ids
    mask: torch.Tensor  # (rows, src_len) bool, True = real token

    def select(self, idx: torch.Tensor) -> FakeMemory:
        return FakeMemory(self.src.index_select(0, idx), self.mask.index_select(0, idx))


class FakeState(NamedTuple):
    prefix: torch.Tensor  # (rows, t) pieces generated so far (BOS not included)
    started: bool  # False before the first step (the input then is BOS)

    def select(self, idx: torch.Tensor) -> FakeState:
        return FakeState(self.prefix.index_select(0, idx), self.started)


@dataclass
class Scenario:
    """``table`` maps prefixes to distributions; prefixes not in it use ``default``."""

    table: dict[Prefix, Distribution] = field(default_factory=dict)
    default: Distribution = field(default_factory=lambda: {EOS: 1.0})
    attention: AttentionFn | None = None

    def dist(self, prefix: Prefix) -> Distribution:
        return self.table.get(prefix, self.default)

    def prob(self, tokens: list[int]) -> float:
        """Probability of ``tokens`` followed by EOS (no search constraints applied)."""
        p, prefix = 1.0, ()
        for tok in [*tokens, EOS]:
            p *= self.dist(prefix).get(tok, 0.0)
            prefix = (*prefix, tok)
        return p

    def log_prob(self, tokens: list[int]) -> float:
        return math.log(self.prob(tokens))


class RandomScenario(Scenario):
    """Every prefix gets its own fixed random distribution over ``pieces`` (seeded by the prefix)."""

    def __init__(self, seed: int, pieces: tuple[int, ...] = (EOS, 4, 5, 6)) -> None:
        super().__init__()
        self.seed, self.pieces = seed, pieces

    def dist(self, prefix: Prefix) -> Distribution:
        rnd = random.Random(f"{self.seed}:{prefix}")
        w = [rnd.uniform(0.05, 1.0) for _ in self.pieces]
        return {tok: x / sum(w) for tok, x in zip(self.pieces, w)}


class FakeModel:
    """``scenarios[src[row, 0]]`` drives each row; counts ``decode_step`` calls in ``steps`` and
    records the rows of each call in ``rows``."""

    def __init__(self, scenarios: dict[int, Scenario]) -> None:
        self.scenarios = scenarios
        self.steps = 0
        self.rows: list[int] = []

    def encode(self, src: torch.Tensor, src_lens: torch.Tensor) -> tuple[FakeMemory, FakeState]:
        mask = src != PAD  # (batch, src_len)
        assert torch.equal(mask.sum(1).cpu(), src_lens.cpu()), "src_lens must match the padding"
        empty = torch.zeros(src.size(0), 0, dtype=torch.long, device=src.device)  # (batch, 0)
        return FakeMemory(src, mask), FakeState(empty, False)

    def decode_step(
        self, tokens: torch.Tensor, state: FakeState, mem: FakeMemory
    ) -> tuple[torch.Tensor, FakeState, torch.Tensor]:
        self.steps += 1
        self.rows.append(tokens.numel())
        if state.started:
            prefix = torch.cat([state.prefix, tokens.unsqueeze(1)], 1)  # (rows, t + 1)
        else:
            assert bool((tokens == BOS).all()), "the first input must be BOS"
            prefix = state.prefix
        rows, src_len = mem.src.shape
        lp = torch.full((rows, VOCAB), -math.inf)  # (rows, vocab)
        attn = torch.zeros(rows, src_len)  # (rows, src_len)
        for r in range(rows):
            scenario = self.scenarios[int(mem.src[r, 0])]
            key: Prefix = tuple(prefix[r].tolist())
            for tok, p in scenario.dist(key).items():
                if p > 0:
                    lp[r, tok] = math.log(p)
            n = int(mem.mask[r].sum())
            weights = scenario.attention(key, n) if scenario.attention else None
            attn[r, :n] = torch.tensor(weights if weights is not None else [1.0 / n] * n)
        return lp.to(tokens.device), FakeState(prefix, True), attn.to(tokens.device)


def source(scenario_ids: list[int], lengths: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A padded source batch: row i starts with ``scenario_ids[i]`` and has ``lengths[i]`` pieces."""
    lengths = lengths or [3] * len(scenario_ids)
    src = torch.full((len(scenario_ids), max(lengths)), PAD, dtype=torch.long)  # (batch, src_len)
    for r, (sid, n) in enumerate(zip(scenario_ids, lengths)):
        src[r, :n] = 4
        src[r, 0] = sid
    return src, torch.tensor(lengths, dtype=torch.long)
