"""Search: a model and a batch of source ids in, hypotheses out (greedy, beam or sampling)."""

from __future__ import annotations

import torch

from nmt.checks import validate_search
from nmt.config import SearchConfig, SearchMethod
from nmt.search.beam import beam_search
from nmt.search.common import Hypothesis, SearchModel
from nmt.search.greedy import Sampler, greedy_search, pick_greedy

__all__ = ["Hypothesis", "SearchModel", "search"]


def search(
    model: SearchModel,
    src: torch.Tensor,
    src_lens: torch.Tensor,
    cfg: SearchConfig,
    with_attention: bool = False,
    keys: torch.Tensor | None = None,
    margins: torch.Tensor | None = None,
) -> list[list[Hypothesis]]:
    """Decode a batch with the method ``cfg.method``; one list of hypotheses (best first) per sentence.

    ``keys`` (batch,) name each sentence's random stream when sampling (default: the row), so a
    sentence samples alike in any batch. ``margins`` (batch,): if given, lowered in place to the
    smallest gap between two scores the search decided on for each sentence; a result whose
    margin is below the arithmetic's rounding error may differ on other hardware.
    """
    validate_search(cfg)
    if cfg.method == SearchMethod.beam:
        return beam_search(model, src, src_lens, cfg, with_attention, margins)
    pick = Sampler(cfg.temperature, cfg.top_k, cfg.seed) if cfg.method == SearchMethod.sample else pick_greedy
    return greedy_search(model, src, src_lens, cfg, pick, with_attention, keys, margins)
