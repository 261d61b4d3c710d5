"""nmt.data.batching: token-budget batches and padded Batch tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nmt.data.batching import batch_indices, make_batch, pad
from nmt.data.corpus import EncodedSplit
from nmt.data.tokenizer import BOS, EOS, PAD


def random_lengths(n: int, seed: int, high: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(1, high, n), rng.integers(1, high, n)


def padded_cost(batch: np.ndarray, src: np.ndarray, tgt: np.ndarray) -> int:
    return len(batch) * max(int(src[batch].max()), int(tgt[batch].max()) + 1)


@pytest.mark.parametrize("sort_window", [0, 50])
@pytest.mark.parametrize("budget", [1, 64, 500, 4096])
def test_token_batches_cover_every_sentence_once_within_the_budget(budget: int, sort_window: int) -> None:
    src, tgt = random_lengths(400, seed=budget)
    batches = batch_indices(
        src, tgt, budget, by_tokens=True, rng=np.random.default_rng(0), sort_window=sort_window
    )
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(400))
    for b in batches:
        assert len(b) >= 1
        assert padded_cost(b, src, tgt) <= budget or len(b) == 1


def test_token_batches_are_full_not_just_within_budget() -> None:
    src = np.full(100, 10)
    tgt = np.full(100, 9)  # cost max(10, 9 + 1) = 10 per sentence
    batches = batch_indices(src, tgt, 100, by_tokens=True)
    assert [len(b) for b in batches] == [10] * 10


def test_target_end_symbol_counts_in_the_cost() -> None:
    src, tgt = np.full(8, 5), np.full(8, 5)  # cost 6 each (target + EOS)
    batches = batch_indices(src, tgt, 30, by_tokens=True)
    assert [len(b) for b in batches] == [5, 3]


def test_sentence_longer_than_the_budget_gets_its_own_batch() -> None:
    src, tgt = np.array([3, 50, 3, 3]), np.array([3, 3, 3, 3])
    batches = batch_indices(src, tgt, 20, by_tokens=True)
    assert [1] in [b.tolist() for b in batches]
    assert sorted(np.concatenate(batches).tolist()) == [0, 1, 2, 3]


def test_max_sents_caps_token_batches() -> None:
    src, tgt = np.full(50, 2), np.full(50, 1)  # cost 2: the token budget alone would allow 100
    batches = batch_indices(src, tgt, 200, by_tokens=True, max_sents=8)
    assert [len(b) for b in batches] == [8] * 6 + [2]


def test_sentence_batches_count_sentences() -> None:
    src, tgt = random_lengths(103, seed=1)
    batches = batch_indices(src, tgt, 10, by_tokens=False, rng=np.random.default_rng(3))
    assert sorted(len(b) for b in batches) == [3] + [10] * 10
    assert sorted(np.concatenate(batches).tolist()) == list(range(103))


def test_same_seed_same_batches_other_seed_other_order() -> None:
    src, tgt = random_lengths(300, seed=2)

    def make(seed: int) -> list[list[int]]:
        return [b.tolist() for b in batch_indices(src, tgt, 256, True, np.random.default_rng(seed))]

    assert make(7) == make(7)
    assert make(7) != make(8)


def test_without_rng_batches_follow_length_order() -> None:
    src, tgt = random_lengths(200, seed=3)
    batches = batch_indices(src, None, 128, by_tokens=True)
    costs = [src[i] for b in batches for i in b]
    assert costs == sorted(costs)
    for b in batches:
        assert len(b) * int(src[b].max()) <= 128 or len(b) == 1


def test_batches_group_similar_lengths() -> None:
    src, tgt = random_lengths(1000, seed=4)
    batches = batch_indices(src, tgt, 1024, True, np.random.default_rng(0))
    real = sum(int(np.maximum(src[b], tgt[b] + 1).sum()) for b in batches)
    padded = sum(padded_cost(b, src, tgt) for b in batches)
    assert real / padded > 0.9  # sorting by length keeps padding small


def test_empty_input_gives_no_batches() -> None:
    assert batch_indices(np.array([], dtype=np.int64), None, 100, True) == []


# --------------------------------------------------------------------------- Batch


@pytest.fixture
def split() -> EncodedSplit:
    src = [[5, 6], [7, 8, 9, 10], [11], [12, 13, 14]]
    tgt = [[20, 21, 22], [23], [24, 25], [26, 27, 28, 29, 30]]
    return EncodedSplit.from_lists(src, tgt, [0, 1, 2, 3])


def test_make_batch_sorts_rows_by_source_length_descending(split: EncodedSplit) -> None:
    b = make_batch(split, np.array([0, 1, 2, 3]))
    assert b.src_lens.tolist() == [4, 3, 2, 1]
    assert b.index.tolist() == [1, 3, 0, 2]
    assert len(b) == 4
    for r, i in enumerate(b.index):
        n = int(b.src_lens[r])
        assert b.src[r, :n].tolist() == split.src(i).tolist()
        assert (b.src[r, n:] == PAD).all()
    assert b.src_lens.device.type == "cpu" and b.src.dtype == torch.long


def test_make_batch_targets_have_bos_eos_and_padding(split: EncodedSplit) -> None:
    b = make_batch(split, np.array([2, 0, 3]))
    assert b.tgt_in is not None and b.tgt_out is not None
    assert b.tgt_in.shape == b.tgt_out.shape == (3, 6)  # longest target 5 + BOS/EOS
    for r, i in enumerate(b.index):
        t = split.tgt(i).tolist()
        assert b.tgt_in[r, 0] == BOS
        assert b.tgt_in[r, 1 : len(t) + 1].tolist() == t
        assert b.tgt_out[r, : len(t)].tolist() == t
        assert b.tgt_out[r, len(t)] == EOS
        assert (b.tgt_in[r, len(t) + 1 :] == PAD).all() and (b.tgt_out[r, len(t) + 1 :] == PAD).all()
        # teacher forcing: the input is the output shifted right by one
        assert b.tgt_in[r, 1 : len(t) + 1].tolist() == b.tgt_out[r, : len(t)].tolist()
    assert b.n_tgt_tokens == (2 + 1) + (3 + 1) + (5 + 1)
    assert b.n_tgt_tokens == int((b.tgt_out != PAD).sum())


def test_make_batch_without_target(split: EncodedSplit) -> None:
    b = make_batch(split, np.array([1, 2]), with_target=False)
    assert b.tgt_in is None and b.tgt_out is None and b.n_tgt_tokens == 0
    assert b.src.shape == (2, 4)


def test_batch_to_cpu_is_the_same_batch(split: EncodedSplit) -> None:
    b = make_batch(split, np.array([0, 1]))
    assert b.to(torch.device("cpu")) is b


def test_pad_options() -> None:
    seqs = [np.array([5, 6]), np.array([7])]
    assert pad(seqs).tolist() == [[5, 6], [7, PAD]]
    assert pad(seqs, bos=True).tolist() == [[BOS, 5, 6], [BOS, 7, PAD]]
    assert pad(seqs, eos=True).tolist() == [[5, 6, EOS], [7, EOS, PAD]]
    assert pad([np.array([], dtype=np.int64)], bos=True, eos=True).tolist() == [[BOS, EOS]]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_batch_to_cuda_keeps_lengths_on_the_cpu(split: EncodedSplit) -> None:
    b = make_batch(split, np.array([0, 1, 2])).to(torch.device("cuda"))
    assert b.src.is_cuda and b.tgt_in is not None and b.tgt_in.is_cuda
    assert b.src_lens.device.type == "cpu"
