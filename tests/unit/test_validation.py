"""Validation: dev loss and greedy BLEU, decoded in batches no larger than a training batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nmt.translator
from nmt.config import BatchType, DataConfig, TrainConfig, TrainJob
from nmt.data.corpus import EncodedSplit
from nmt.model.seq2seq import Seq2Seq
from nmt.training.validation import validate
from tests.helpers import tiny_model_config

VOCAB = 30


class _PieceIds:
    """Stands in for the target tokenizer: ids back to a space-separated string."""

    def decode(self, seqs: list[list[int]]) -> list[str]:
        return [" ".join(map(str, s)) for s in seqs]


def _dev(n: int, seed: int = 0) -> EncodedSplit:
    rng = np.random.default_rng(seed)

    def sentences() -> list[list[int]]:
        return [rng.integers(4, VOCAB, size=rng.integers(1, 12)).tolist() for _ in range(n)]

    return EncodedSplit.from_lists(sentences(), sentences(), list(range(n)))


@pytest.mark.parametrize("batch_type,batch_size", [(BatchType.sents, 7), (BatchType.tokens, 40)])
def test_greedy_decoding_stays_within_a_training_batch(
    monkeypatch: pytest.MonkeyPatch, batch_type: BatchType, batch_size: int
) -> None:
    torch.manual_seed(0)
    model = Seq2Seq(tiny_model_config(), VOCAB, VOCAB)
    dev = _dev(50)
    cfg = TrainJob(
        data=DataConfig(name="toy", corpus="toy", src_lang="src", tgt_lang="tgt", segmented=True),
        train=TrainConfig(batch_type=batch_type, batch_size=batch_size),
    )
    cfg.search.max_len_a, cfg.search.max_len_b = 0.0, 5
    shapes: list[tuple[int, int]] = []
    search = nmt.translator.search

    def recording(model, src, *args, **kwargs):  # type: ignore[no-untyped-def]
        shapes.append(tuple(src.shape))
        return search(model, src, *args, **kwargs)

    monkeypatch.setattr(nmt.translator, "search", recording)
    refs = [f"line {i}" for i in range(len(dev))]
    out = validate(model, dev, refs, _PieceIds(), cfg, torch.device("cpu"), None)  # type: ignore[arg-type]

    assert sum(b for b, _ in shapes) == len(dev)  # every dev sentence decoded once
    assert len(shapes) > 1
    if batch_type is BatchType.sents:
        assert max(b for b, _ in shapes) <= batch_size
    else:
        assert max(b * t for b, t in shapes) <= batch_size
    assert np.isfinite(out["dev_nll"]) and 0.0 <= out["dev_bleu"] <= 100.0


def test_bleu_is_scored_on_a_sample_spread_over_the_whole_dev_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """valid_max_sents=N decodes N pairs from every part of dev (the first N lines of a set of
    articles are a few articles), and scores them against their own references."""
    import nmt.training.validation as validation
    from nmt.data.files import spread_indices

    torch.manual_seed(0)
    model = Seq2Seq(tiny_model_config(), VOCAB, VOCAB)
    dev = _dev(50)
    cfg = TrainJob(
        data=DataConfig(name="toy", corpus="toy", src_lang="src", tgt_lang="tgt", segmented=True),
        train=TrainConfig(valid_max_sents=5),
    )
    cfg.search.max_len_a, cfg.search.max_len_b = 0.0, 5
    scored: list[list[str]] = []
    real = validation.bleu
    monkeypatch.setattr(validation, "bleu", lambda h, r, tok: (scored.append(r), real(h, r, tok))[1])
    refs = [f"line {i}" for i in range(len(dev))]
    validate(model, dev, refs, _PieceIds(), cfg, torch.device("cpu"), None)  # type: ignore[arg-type]
    assert spread_indices(50, 5) == [0, 12, 24, 37, 49]
    assert scored == [["line 0", "line 12", "line 24", "line 37", "line 49"]]


def test_spread_indices_cover_the_set_evenly() -> None:
    from nmt.data.files import spread_indices

    assert spread_indices(10, 0) == list(range(10)) and spread_indices(10, 10) == list(range(10))
    assert spread_indices(10, 1) == [0] and spread_indices(10, 2) == [0, 9]
    for total, n in [(2012, 500), (7, 6), (1000, 999)]:
        got = spread_indices(total, n)
        assert len(got) == n and got[0] == 0 and got[-1] == total - 1 and got == sorted(set(got))
        gaps = np.diff(got)
        assert gaps.max() - gaps.min() <= 1  # as even as integers allow


@pytest.mark.parametrize(
    ("metric", "valid_bleu", "want"),
    [("bleu", True, (20.0, 20.0)), ("loss", True, (20.0, -2.5)), ("bleu", False, (-2.5, -2.5))],
)
def test_the_plateau_schedule_watches_bleu_or_loss(metric: str, valid_bleu: bool, want: tuple) -> None:
    from nmt.config import PlateauMetric
    from nmt.training.trainer import scores

    tc = TrainConfig(plateau_metric=PlateauMetric(metric), valid_bleu=valid_bleu)
    r = {"dev_bleu": 20.0, "dev_nll": 2.5} if valid_bleu else {"dev_nll": 2.5}
    assert scores(r, tc) == want
