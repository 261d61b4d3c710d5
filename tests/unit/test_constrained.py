"""Lexically constrained beam search (dynamic beam allocation): every constraint appears, in
order when asked, the result is the best constrained hypothesis when the beam can hold them all,
and a search without constraints is the ordinary one."""

from __future__ import annotations

import itertools
import math
import random

import pytest
import torch

from nmt.config import LengthPenalty, SearchConfig, SearchMethod
from nmt.data.tokenizer import EOS
from nmt.search.constrained import Progress, allocate, constrained_search
from tests.unit.fake_model import FakeModel, RandomScenario, Scenario, source

PIECES = (4, 5, 6, 7)


def contains(seq: list[int], phrase: list[int]) -> int:
    """The position of ``phrase`` in ``seq`` (-1: absent)."""
    for i in range(len(seq) - len(phrase) + 1):
        if seq[i : i + len(phrase)] == phrase:
            return i
    return -1


def in_order(seq: list[int], phrases: list[list[int]]) -> bool:
    start = 0
    for p in phrases:
        at = contains(seq[start:], p)
        if at < 0:
            return False
        start += at + len(p)
    return True


def cfg(beam: int, limit: int, penalty: LengthPenalty = LengthPenalty.gnmt) -> SearchConfig:
    return SearchConfig(
        method=SearchMethod.beam, beam_size=beam, max_len_a=0.0, max_len_b=limit, length_penalty=penalty
    )


@pytest.mark.parametrize("ordered", [False, True])
def test_every_constraint_appears(ordered: bool) -> None:
    rnd = random.Random(5)
    for seed in range(40):
        model = FakeModel({20: RandomScenario(seed, (EOS, *PIECES))})
        phrases = [[rnd.choice(PIECES) for _ in range(rnd.randint(1, 3))] for _ in range(rnd.randint(1, 3))]
        src, lens = source([20])
        [hyps] = constrained_search(model, src, lens, cfg(4, 6), [phrases], ordered)
        best = hyps[0].tokens
        if ordered:
            assert in_order(best, phrases), (seed, phrases, best)
        else:
            assert all(contains(best, p) >= 0 for p in phrases), (seed, phrases, best)
        assert math.isfinite(hyps[0].score)


def test_with_room_for_every_hypothesis_it_finds_the_best_constrained_one() -> None:
    """Beam 64 over 3 pieces and at most 4 of them holds every prefix: the search is exact, so
    its result is the most probable sequence that contains the phrase, found by enumeration."""
    pieces = (4, 5, 6)
    for seed in range(12):
        scenario = RandomScenario(seed, (EOS, *pieces))
        model = FakeModel({20: scenario})
        phrase = [pieces[seed % 3], pieces[(seed + 1) % 3]]
        src, lens = source([20])
        [hyps] = constrained_search(model, src, lens, cfg(64, 4, LengthPenalty.none), [[phrase]])
        candidates = [
            list(seq)
            for n in range(len(phrase), 4)
            for seq in itertools.product(pieces, repeat=n)
            if contains(list(seq), phrase) >= 0
        ]
        want = max(candidates, key=scenario.log_prob)
        assert hyps[0].tokens == want, seed
        assert hyps[0].log_prob == pytest.approx(scenario.log_prob(want), abs=1e-5)


def test_a_constraint_the_model_would_never_write_is_written_anyway() -> None:
    """The model gives piece 7 no probability at all: the best hypothesis of the highest bank is
    completed with it at the limit, so the guarantee holds (with a score of -inf)."""
    model = FakeModel({20: Scenario({(): {4: 0.6, 5: 0.3, EOS: 0.1}}, default={5: 0.5, EOS: 0.5})})
    src, lens = source([20])
    [hyps] = constrained_search(model, src, lens, cfg(3, 3), [[[4], [7]]])
    assert contains(hyps[0].tokens, [7]) >= 0 and contains(hyps[0].tokens, [4]) >= 0
    assert hyps[0].score == -math.inf


def test_nbest_lists_only_constrained_hypotheses_best_first() -> None:
    model = FakeModel({20: RandomScenario(3, (EOS, *PIECES))})
    src, lens = source([20])
    c = cfg(6, 5)
    c.nbest = 3
    [hyps] = constrained_search(model, src, lens, c, [[[5, 6]]])
    assert len(hyps) == 3 and all(contains(h.tokens, [5, 6]) >= 0 for h in hyps)
    assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)


def test_progress_through_phrases() -> None:
    phrases = [[4, 5, 6], [7]]
    p = Progress((False, False))
    assert p.wanted(phrases, ordered=False) == {4, 7} and p.wanted(phrases, ordered=True) == {4}
    p = p.after(4, phrases, False).after(5, phrases, False)
    assert (p.phrase, p.done, p.pieces_met(phrases)) == (0, 2, 2) and p.wanted(phrases, False) == {6}
    broken = p.after(9, phrases, False)  # a piece that breaks the phrase off: it starts over
    assert (broken.phrase, broken.done, broken.pieces_met(phrases)) == (-1, 0, 0)
    restarted = p.after(7, phrases, False)  # ... and may start another phrase at once
    assert restarted.met == (False, True) and restarted.pieces_met(phrases) == 1
    done = p.after(6, phrases, False)
    assert done.met == (True, False) and done.pieces_met(phrases) == 3 and done.missing(phrases, False) == [7]
    assert Progress((False, False)).after(7, phrases, True).met == (False, False)  # ordered: 7 is second


def test_the_beam_is_shared_among_banks_highest_first() -> None:
    banks = {
        0: [(-1.0, "a0"), (-1.1, "b0"), (-1.2, "c0")],
        2: [(-5.0, "a2")],
        1: [(-3.0, "a1"), (-3.1, "b1")],
    }
    assert [c[1] for c in allocate(banks, 3, 2)] == ["a2", "a1", "a0"]
    # 5 places: 2 for bank 2 (the remainder goes to the highest banks), 2 for bank 1, 1 for bank
    # 0; the place bank 2 cannot fill goes to the best candidate left (b0)
    assert [c[1] for c in allocate(banks, 5, 2)] == ["a2", "a1", "b1", "a0", "b0"]
    assert [c[1] for c in allocate(banks, 2, 2)] == ["a2", "a1"]  # fewer places than banks


def test_attention_rows_cover_every_piece_and_eos() -> None:
    model = FakeModel({20: RandomScenario(8, (EOS, *PIECES))})
    src, lens = source([20], [4])
    [hyps] = constrained_search(model, src, lens, cfg(4, 5), [[[6]]], with_attention=True)
    att = hyps[0].attention
    assert att is not None and tuple(att.shape) == (len(hyps[0].tokens) + 1, 4)
    assert torch.allclose(att.sum(1), torch.ones(att.size(0)))


def test_a_batch_gives_each_sentence_what_it_gets_alone() -> None:
    """Sentences of different lengths, phrases and limits decode together, each row of the model's
    step belonging to one sentence: every sentence gets exactly its result alone (n-best lists,
    scores, attention), whether the phrases are ordered or not."""
    rnd = random.Random(11)
    ids = list(range(20, 28))
    model = FakeModel({i: RandomScenario(i, (EOS, *PIECES)) for i in ids})
    lengths = [rnd.randint(2, 6) for _ in ids]
    terms = [
        [[rnd.choice(PIECES) for _ in range(rnd.randint(1, 2))] for _ in range(rnd.randint(1, 3))]
        for _ in ids
    ]
    c = SearchConfig(method=SearchMethod.beam, beam_size=4, max_len_a=1.0, max_len_b=1, nbest=2)
    for ordered in (False, True):
        src, lens = source(ids, lengths)
        batch = constrained_search(model, src, lens, c, terms, ordered, with_attention=True)
        for b, sid in enumerate(ids):
            one_src, one_lens = source([sid], [lengths[b]])
            [alone] = constrained_search(
                model, one_src, one_lens, c, [terms[b]], ordered, with_attention=True
            )
            assert [h.tokens for h in batch[b]] == [h.tokens for h in alone], (ordered, b)
            assert [h.score for h in batch[b]] == [h.score for h in alone]
            assert [h.log_prob for h in batch[b]] == [h.log_prob for h in alone]
            for x, y in zip(batch[b], alone):
                assert torch.equal(x.attention[:, : lengths[b]], y.attention)


def test_a_sentence_completed_at_the_limit_is_scored_by_the_model() -> None:
    """Piece 7 has no probability until after 4, and the limit (1 piece + 1 for the phrase) comes
    first: the search ends with [4] and completes it. The completion continues the state that has
    read 4 once, so its log-probability is the model's for [4, 7, EOS]."""
    scenario = Scenario({(): {4: 1.0}, (4,): {5: 0.5, 7: 0.1, EOS: 0.4}}, default={7: 0.5, EOS: 0.5})
    model = FakeModel({20: scenario})
    src, lens = source([20])
    [hyps] = constrained_search(model, src, lens, cfg(3, 1), [[[7]]])
    assert hyps[0].tokens == [4, 7]
    assert hyps[0].log_prob == pytest.approx(scenario.log_prob([4, 7]), abs=1e-6)


def test_the_repeat_block_holds_with_constraints() -> None:
    def repeats(seq: list[int], n: int) -> bool:
        grams = [tuple(seq[i : i + n]) for i in range(len(seq) - n + 1)]
        return len(grams) != len(set(grams))

    blocked = 0
    for seed in range(20):
        model = FakeModel({20: RandomScenario(seed, (EOS, *PIECES))})
        src, lens = source([20])
        free = cfg(3, 9, LengthPenalty.none)
        free.min_len = 7  # long outputs from 4 pieces: repeats come easily
        [plain] = constrained_search(model, src, lens, free, [[[5]]])
        free.no_repeat_ngram = 2
        [hyps] = constrained_search(model, src, lens, free, [[[5]]])
        assert contains(hyps[0].tokens, [5]) >= 0 and not repeats(hyps[0].tokens, 2), seed
        blocked += repeats(plain[0].tokens, 2)
    assert blocked > 0  # without the block some outputs repeat a bigram
