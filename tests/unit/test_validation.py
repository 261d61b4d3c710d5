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
