"""nmt.search.common: length limits, length and coverage penalties, per-step constraints."""

from __future__ import annotations

import math

import pytest
import torch

from nmt.config import LengthPenalty, SearchConfig
from nmt.data.tokenizer import BOS, EOS, PAD
from nmt.search.common import (
    NEG_INF,
    constrain,
    coverage_penalty,
    length_limits,
    length_norm,
    max_steps,
    topk,
)


def test_length_limits_floor_a_times_source_plus_b() -> None:
    cfg = SearchConfig(max_len_a=1.5, max_len_b=2)
    assert length_limits(torch.tensor([1, 2, 3, 10]), cfg).tolist() == [3, 5, 6, 17]
    assert length_limits(torch.tensor([4]), SearchConfig(max_len_a=0.0, max_len_b=0)).tolist() == [
        1
    ]  # at least 1
    assert max_steps(torch.tensor([3, 9, 4])) == 9
    assert max_steps(torch.tensor([], dtype=torch.long)) == 0


@pytest.mark.parametrize(
    ("penalty", "length", "want"),
    [
        (LengthPenalty.none, 7, 1.0),
        (LengthPenalty.average, 7, 7.0),
        (LengthPenalty.gnmt, 1, 1.0),
        (LengthPenalty.gnmt, 7, (12 / 6) ** 0.6),
    ],
)
def test_length_norm(penalty: LengthPenalty, length: int, want: float) -> None:
    cfg = SearchConfig(length_penalty=penalty, alpha=0.6)
    assert float(length_norm(length, cfg)) == pytest.approx(want)
    as_tensor = length_norm(torch.tensor([length, 1]), cfg)
    assert float(torch.as_tensor(as_tensor).flatten()[0]) == pytest.approx(want)


def test_coverage_penalty_gnmt() -> None:
    cov = torch.tensor([[0.5, 1.7, 0.0, 0.9]])  # (rows, src_len)
    mask = torch.tensor([[True, True, True, False]])
    got = coverage_penalty(cov, mask, beta=0.2)
    want = 0.2 * (math.log(0.5) + math.log(1.0) + math.log(1e-6))  # padding ignored, 0 clamped
    assert float(got) == pytest.approx(want, rel=1e-5)
    assert float(coverage_penalty(torch.ones(1, 3) * 2, torch.ones(1, 3, dtype=torch.bool), 1.0)) == 0.0


def step_lp(rows: int = 2, vocab: int = 8) -> torch.Tensor:
    return torch.log_softmax(torch.arange(rows * vocab, dtype=torch.float).view(rows, vocab) / 10, 1)


def test_constrain_never_allows_pad_or_bos() -> None:
    lp = constrain(step_lp(), 0, torch.tensor([10, 10]), SearchConfig(), None)
    assert (lp[:, PAD] == NEG_INF).all() and (lp[:, BOS] == NEG_INF).all()
    assert torch.isfinite(lp[:, EOS:]).all()


def test_constrain_min_len_blocks_eos_until_then() -> None:
    cfg = SearchConfig(min_len=2)
    assert (constrain(step_lp(), 1, torch.tensor([10, 10]), cfg, None)[:, EOS] == NEG_INF).all()
    assert torch.isfinite(constrain(step_lp(), 2, torch.tensor([10, 10]), cfg, None)[:, EOS]).all()


def test_constrain_at_the_limit_allows_only_eos_with_its_log_prob() -> None:
    orig = step_lp()
    lp = constrain(orig.clone(), 4, torch.tensor([5, 9]), SearchConfig(min_len=20), None)
    assert lp[0, EOS] == orig[0, EOS]  # at the limit (step + 1 == 5): EOS, even before min_len
    assert (lp[0, torch.arange(8) != EOS] == NEG_INF).all()
    assert lp[1, EOS] == NEG_INF  # row 1 is not at its limit, and min_len still applies
    assert torch.isfinite(lp[1, 4:]).all()


def test_constrain_no_repeat_ngram_bans_the_completing_pieces() -> None:
    history = torch.tensor([[4, 5, 6, 4, 0, 0], [7, 7, 7, 7, 0, 0]])
    lp = constrain(step_lp(), 4, torch.tensor([10, 10]), SearchConfig(no_repeat_ngram=2), history)
    assert lp[0, 5] == NEG_INF  # "4 5" was seen and the last piece is 4
    assert torch.isfinite(lp[0, [4, 6, 7]]).all()
    assert lp[1, 7] == NEG_INF and torch.isfinite(lp[1, [4, 5, 6]]).all()
    lp1 = constrain(step_lp(), 4, torch.tensor([10, 10]), SearchConfig(no_repeat_ngram=1), history)
    assert (lp1[0, [4, 5, 6]] == NEG_INF).all() and torch.isfinite(lp1[0, 7])


@pytest.mark.parametrize(("rows", "n", "k"), [(3, 40_000, 10), (5, 40_001, 11), (2, 8_000, 1), (4, 1_000, 5)])
def test_chunked_topk_equals_torch_topk(rows: int, n: int, k: int) -> None:
    g = torch.Generator().manual_seed(n + k)
    x = torch.randn(rows, n, generator=g, dtype=torch.float64)
    x[0, : n // 2] = NEG_INF  # masked scores, as a search has them
    values, idx = topk(x, k)
    want_v, want_i = x.topk(k, dim=1)
    assert torch.equal(values, want_v) and torch.equal(idx, want_i)
    assert torch.equal(x.gather(1, idx), values)


def test_chunked_topk_with_fewer_finite_scores_than_k() -> None:
    x = torch.full((2, 10_000), NEG_INF)
    x[0, 17], x[1, 9_999] = -1.0, -2.0
    values, idx = topk(x, 3)
    assert values[:, 0].tolist() == [-1.0, -2.0] and idx[:, 0].tolist() == [17, 9_999]
    assert torch.isinf(values[:, 1:]).all()
