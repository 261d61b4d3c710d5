"""Several models as one: the search interface (``encode``, ``decode_step``) over an ensemble.

At each step every model scores the next piece and the ensemble's log-probability is the mean of
theirs (the ensembles of OpenNMT-py and of Sutskever et al. 2014 average what each model says);
the attention reported is the mean attention. Greedy search, beam search, sampling, the coverage
penalty and unknown-word replacement run on it unchanged. The models must share their source and
target vocabularies (the same ids mean the same pieces); they may differ in everything else
(size, cell, attention, seed).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch


class EnsembleMemory(NamedTuple):
    members: tuple[Any, ...]

    @property
    def mask(self) -> torch.Tensor:  # (rows, src_len), the same for every member
        return self.members[0].mask

    def select(self, idx: torch.Tensor) -> EnsembleMemory:
        return EnsembleMemory(tuple(m.select(idx) for m in self.members))


class EnsembleState(NamedTuple):
    members: tuple[Any, ...]

    def select(self, idx: torch.Tensor) -> EnsembleState:
        return EnsembleState(tuple(s.select(idx) for s in self.members))


class Ensemble:
    """``models``: objects with ``encode`` and ``decode_step`` (Seq2Seq, or anything the search takes)."""

    def __init__(self, models: list[Any]) -> None:
        if not models:
            raise ValueError("an ensemble needs at least one model")
        self.models = models

    def encode(self, src: torch.Tensor, src_lens: torch.Tensor) -> tuple[EnsembleMemory, EnsembleState]:
        encoded = [m.encode(src, src_lens) for m in self.models]
        return EnsembleMemory(tuple(e[0] for e in encoded)), EnsembleState(tuple(e[1] for e in encoded))

    def decode_step(
        self, tokens: torch.Tensor, state: EnsembleState, mem: EnsembleMemory
    ) -> tuple[torch.Tensor, EnsembleState, torch.Tensor]:
        """tokens (rows,) -> mean log-probabilities (rows, vocab), new states, mean attention (rows, src_len)."""
        steps = [m.decode_step(tokens, s, mm) for m, s, mm in zip(self.models, state.members, mem.members)]
        lp = torch.stack([s[0] for s in steps]).mean(0)  # (rows, vocab)
        attention = torch.stack([s[2].float() for s in steps]).mean(0)  # (rows, src_len)
        return lp, EnsembleState(tuple(s[1] for s in steps)), attention

    def parameters(self):  # noqa: ANN201
        for m in self.models:
            yield from m.parameters()
