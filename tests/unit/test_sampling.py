"""Subword sampling: an epoch's segmentation follows (seed, epoch, chunk) only, differs from one
epoch to the next, decodes to the same text, and keeps the prepared pieces where it cannot apply."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nmt.data.sampling import Resegmenter, SampledEpochs, chunk_seed
from nmt.data.store import EncodedSplit
from nmt.data.tokenizer import UNK, Tokenizer
from nmt.data.toy import make_pairs


@pytest.fixture(scope="module")
def unigram(tmp_path_factory: pytest.TempPathFactory) -> Tokenizer:
    import sentencepiece as spm

    folder = tmp_path_factory.mktemp("uni")
    text = folder / "text.txt"
    text.write_text("".join(f"{s} {t}\n" for s, t in make_pairs(3000, seed=1)), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(text), model_prefix=str(folder / "m"), vocab_size=50, model_type="unigram",
        pad_id=0, unk_id=1, bos_id=2, eos_id=3, minloglevel=2,
    )  # fmt: skip
    return Tokenizer.load(folder / "m.model")


def split_of(tok: Tokenizer, n: int) -> EncodedSplit:
    pairs = make_pairs(n, seed=2)
    return EncodedSplit.from_lists(
        tok.encode([s for s, _ in pairs]), tok.encode([t for _, t in pairs]), list(range(n))
    )


def worker(tok: Tokenizer, max_len: int = 0, sides: str = "both") -> Resegmenter:
    return Resegmenter(tok.proto, tok.proto, 0.2, -1, sides, max_len)


def test_an_epoch_follows_its_seed_and_differs_from_the_next(unigram: Tokenizer, tmp_path: Path) -> None:
    base = split_of(unigram, 300)
    a = SampledEpochs(base, worker(unigram), 7, tmp_path / "a", lambda e: None, workers=1)
    b = SampledEpochs(base, worker(unigram), 7, tmp_path / "b", lambda e: None, workers=1)
    e1, again, e2 = a.epoch(1), b.epoch(1), a.epoch(2)
    a.close(), b.close()
    for i in range(len(base)):
        assert np.array_equal(e1.src(i), again.src(i)) and np.array_equal(e1.tgt(i), again.tgt(i))
        for view in (e1, e2):  # the same text, in other pieces
            assert unigram.decode([view.src(i).tolist()]) == unigram.decode([base.src(i).tolist()])
    changed = sum(not np.array_equal(e1.src(i), e2.src(i)) for i in range(len(base)))
    assert changed > len(base) // 4
    assert e1.src_lens.sum() > base.src_lens.sum()  # sampling splits words into more pieces
    assert np.array_equal(e1.src_lens, [len(e1.src(i)) for i in range(len(base))])
    assert chunk_seed(7, 1, 0) != chunk_seed(7, 2, 0) != chunk_seed(8, 1, 0)


def test_only_the_drawn_pairs_and_the_asked_side_are_sampled(unigram: Tokenizer, tmp_path: Path) -> None:
    base = split_of(unigram, 200)
    drawn = np.array([5, 3, 3, 150])
    epochs = SampledEpochs(base, worker(unigram, sides="tgt"), 1, tmp_path, lambda e: drawn, workers=1)
    view = epochs.epoch(1)
    epochs.close()
    for i in range(len(base)):
        assert np.array_equal(view.src(i), base.src(i))  # the source side is never sampled here
        if i not in (3, 5, 150):
            assert np.array_equal(view.tgt(i), base.tgt(i))


def test_prepared_pieces_stay_where_sampling_cannot_apply(unigram: Tokenizer) -> None:
    with_unk = [np.array([4, UNK, 5], dtype=np.int32)]
    long = [np.array(unigram.encode(["red cat big"])[0], dtype=np.int32)]
    out = worker(unigram, max_len=len(long[0])).chunk(3, with_unk + long, with_unk + long)
    src_ids, src_lens = out[0], out[1]
    assert src_lens[0] == 3 and src_ids[:3].tolist() == [4, UNK, 5]  # its text would not come back
    assert src_lens[1] == len(long[0])  # never longer than max_len


def test_the_draws_are_the_same_in_another_process(unigram: Tokenizer) -> None:
    """What makes a resumed run exact: a chunk's draws follow its seed alone, not the process
    (SentencePiece's own sampling draws differently in every process for the same seed)."""
    from nmt.data.encode import run

    base = split_of(unigram, 200)
    seqs = [base.src(i) for i in range(len(base))]
    here = worker(unigram).chunk(11, seqs, seqs)
    [there] = list(run(worker(unigram), "chunk", [(11, seqs, seqs)], 1, spawn=True))
    assert all(np.array_equal(a, b) for a, b in zip(here, there))


def test_bpe_dropout_at_zero_is_sentencepieces_own_segmentation(tmp_path: Path) -> None:
    import sentencepiece as spm

    from nmt.data.sampling import WordSampler

    text = tmp_path / "text.txt"
    text.write_text("".join(f"{s} {t}\n" for s, t in make_pairs(3000, seed=4)), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(text), model_prefix=str(tmp_path / "b"), vocab_size=80, model_type="bpe",
        pad_id=0, unk_id=1, bos_id=2, eos_id=3, minloglevel=2,
    )  # fmt: skip
    tok = Tokenizer.load(tmp_path / "b.model")
    lines = [s for s, _ in make_pairs(200, seed=9)]
    rng = np.random.default_rng(0)
    none = WordSampler(tok.proto, 0.0, 8)
    assert none.bpe and [none.sentence(line, rng) for line in lines] == tok.encode(lines)
    some = WordSampler(tok.proto, 0.3, 8)
    dropped = [some.sentence(line, rng) for line in lines]
    assert tok.decode(dropped) == tok.decode(tok.encode(lines))  # the same text ...
    assert sum(map(len, dropped)) > sum(map(len, tok.encode(lines)))  # ... in more, smaller pieces
