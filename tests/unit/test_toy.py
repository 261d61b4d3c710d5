"""nmt.data.toy: the synthetic reverse-and-translate task."""

from __future__ import annotations

from pathlib import Path

from nmt.data.files import read_parallel
from nmt.data.toy import DICTIONARY, make_pairs, write_corpus


def test_target_is_the_reversed_source_through_the_dictionary() -> None:
    for src, tgt in make_pairs(200, seed=4):
        words = src.split()
        assert 3 <= len(words) <= 10
        assert tgt.split() == [DICTIONARY[w] for w in reversed(words)]


def test_pairs_are_seeded() -> None:
    assert make_pairs(50, seed=1) == make_pairs(50, seed=1)
    assert make_pairs(50, seed=1) != make_pairs(50, seed=2)


def test_write_corpus_lays_out_the_splits(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path, train=30, dev=5, test=7)
    assert folder == tmp_path / "toy"
    for split, n in (("train", 30), ("dev", 5), ("test", 7)):
        src, tgt = read_parallel(folder / f"{split}.src", folder / f"{split}.tgt")
        assert len(src) == len(tgt) == n
    train_src = read_parallel(folder / "train.src", folder / "train.tgt")[0]
    test_src = read_parallel(folder / "test.src", folder / "test.tgt")[0]
    assert train_src[:7] != test_src  # the splits use different seeds
