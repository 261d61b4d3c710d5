"""Search: a model and a batch of source ids in, hypotheses out (greedy, beam or sampling)."""

from __future__ import annotations

import torch

from nmt.config import SearchConfig, SearchMethod, validate_search
from nmt.search.beam import beam_search
from nmt.search.common import Hypothesis, SearchModel
from nmt.search.greedy import Sampler, greedy_search

__all__ = ["Hypothesis", "SearchModel", "search"]


def search(
    model: SearchModel,
    src: torch.Tensor,
    src_lens: torch.Tensor,
    cfg: SearchConfig,
    with_attention: bool = False,
) -> list[list[Hypothesis]]:
    """Decode a batch with the method ``cfg.method``; one list of hypotheses (best first) per sentence."""
    validate_search(cfg)
    if cfg.method == SearchMethod.beam:
        return beam_search(model, src, src_lens, cfg, with_attention)
    if cfg.method == SearchMethod.sample:
        sampler = Sampler(cfg.temperature, cfg.top_k, cfg.seed, src.device)
        return greedy_search(model, src, src_lens, cfg, pick=sampler, with_attention=with_attention)
    return greedy_search(model, src, src_lens, cfg, with_attention=with_attention)
