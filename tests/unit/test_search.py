"""nmt.search (greedy, beam, sampling) driven by a scripted fake model with hand-set probabilities.

Every expected hypothesis and score below is worked out by hand from the scenario tables; the
comments show the arithmetic. Scores are compared to 1e-5 (the search sums float32 log-probs).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch

from nmt import NmtError
from nmt.config import BeamStop, LengthPenalty, SearchConfig, SearchMethod
from nmt.data.files import read_lines
from nmt.data.tokenizer import EOS, PAD
from nmt.model.io import load_model
from nmt.search import Hypothesis, search
from nmt.search.common import length_norm
from nmt.translator import decode_ids
from tests.conftest import ToyRun
from tests.unit.fake_model import FakeModel, Prefix, RandomScenario, Scenario, source

TOL = 1e-5

# --------------------------------------------------------------------------- scenarios

# Garden path: greedy takes 4 (p=.5) and then finds only flat continuations; 5 (p=.4) leads to a
# sure 6 and a sure EOS.   greedy [4,6]: .5*.4*.6 = .12   best [5,6]: .4*.9*.9 = .324
GARDEN = 10
GARDEN_SCN = Scenario(
    {
        (): {4: 0.5, 5: 0.4, EOS: 0.1},
        (4,): {6: 0.4, 7: 0.3, 8: 0.2, EOS: 0.1},
        (5,): {6: 0.9, EOS: 0.1},
        (5, 6): {EOS: 0.9, 7: 0.1},
        (4, 6): {EOS: 0.6, 9: 0.4},
    }
)
# Length: the empty output is the most likely (.4), [4,5,6] (.384) wins once length is rewarded.
#   [] .4   [4] .6*.2=.12   [4,5] .6*.8*.2=.096   [4,5,6] .6*.8*.8*1=.384
LENGTH = 11
LENGTH_SCN = Scenario({(): {EOS: 0.4, 4: 0.6}, (4,): {5: 0.8, EOS: 0.2}, (4, 5): {6: 0.8, EOS: 0.2}})
# A sentence that never wants to stop: 4 with p=.9 at every step.
LOOP = 12
LOOP_SCN = Scenario(default={4: 0.9, 5: 0.05, EOS: 0.05})
# EOS is the most likely piece at every step until [4,5,6].
MINLEN = 13
MINLEN_SCN = Scenario({(): {EOS: 0.6, 4: 0.4}, (4,): {EOS: 0.7, 5: 0.3}, (4, 5): {EOS: 0.8, 6: 0.2}})
# Same distribution at every step: greedy repeats 4.
REPEAT = 14
REPEAT_SCN = Scenario(default={4: 0.5, 5: 0.3, 6: 0.15, EOS: 0.05})


# Coverage: [4] is more likely (.6) but attends to source position 0 only; [5] (.4) covers both.
def _cover_attention(prefix: Prefix, n: int) -> list[float]:
    return {(): [0.7, 0.3], (4,): [1.0, 0.0], (5,): [0.3, 0.7]}[prefix]


def _cover_attention_never(prefix: Prefix, n: int) -> list[float]:
    return {(): [1.0, 0.0], (4,): [1.0, 0.0], (5,): [0.0, 1.0]}[prefix]


COVER = 15
COVER_SCN = Scenario({(): {4: 0.6, 5: 0.4}}, attention=_cover_attention)
COVER_NEVER = 16
COVER_NEVER_SCN = Scenario({(): {4: 0.6, 5: 0.4}}, attention=_cover_attention_never)
# EOS is (just) the most likely first piece, and [4] almost as likely: a length penalty prefers [4].
#   greedy [] .5     [4] .49
NEAR_TIE = 17
NEAR_TIE_SCN = Scenario({(): {EOS: 0.5, 4: 0.49, 5: 0.01}})
# Sampling: three first pieces with known probabilities, then EOS.
COIN = 18
COIN_SCN = Scenario({(): {4: 0.7, 5: 0.2, 6: 0.1}, (4,): {EOS: 1.0}, (5,): {EOS: 1.0}, (6,): {EOS: 1.0}})

# Three first pieces, then the end: decisions with known gaps (margins).
THREE = 19
THREE_SCN = Scenario({(): {4: 0.5, 5: 0.3, EOS: 0.2}})

RANDOM_IDS = list(range(20, 26))

SCENARIOS: dict[int, Scenario] = {
    GARDEN: GARDEN_SCN,
    LENGTH: LENGTH_SCN,
    LOOP: LOOP_SCN,
    MINLEN: MINLEN_SCN,
    REPEAT: REPEAT_SCN,
    COVER: COVER_SCN,
    COVER_NEVER: COVER_NEVER_SCN,
    NEAR_TIE: NEAR_TIE_SCN,
    COIN: COIN_SCN,
    THREE: THREE_SCN,
    **{i: RandomScenario(seed=i) for i in RANDOM_IDS},
}


def fake() -> FakeModel:
    return FakeModel(SCENARIOS)


def cfg(method: str = "beam", **kw: object) -> SearchConfig:
    """A search config with a fixed limit of 10 pieces (a=0, b=10) and no length penalty unless given."""
    base: dict[str, object] = dict(
        method=SearchMethod(method), max_len_a=0.0, max_len_b=10, length_penalty=LengthPenalty.none
    )
    base.update(kw)
    if isinstance(base["length_penalty"], str):
        base["length_penalty"] = LengthPenalty(base["length_penalty"])
    if isinstance(base.get("stop"), str):
        base["stop"] = BeamStop(base["stop"])
    return SearchConfig(**base)  # type: ignore[arg-type]


def run(
    scenario_ids: list[int], c: SearchConfig, lengths: list[int] | None = None, **kw
) -> list[list[Hypothesis]]:
    src, lens = source(scenario_ids, lengths)
    return search(fake(), src, lens, c, **kw)


def best(scenario: int, c: SearchConfig, length: int = 3) -> Hypothesis:
    return run([scenario], c, [length])[0][0]


def log(*probs: float) -> float:
    return sum(math.log(p) for p in probs)


# --------------------------------------------------------------------------- brute force


def enumerate_outputs(scn: Scenario, limit: int, min_len: int = 0) -> Iterator[tuple[list[int], float]]:
    """Every complete output the search could produce, with its log-probability: EOS only after
    ``min_len`` pieces, and at the limit (``limit`` pieces with EOS) only EOS, at the model's probability."""

    def walk(prefix: tuple[int, ...], lp: float) -> Iterator[tuple[list[int], float]]:
        dist = scn.dist(prefix)
        at_limit = len(prefix) + 1 >= limit
        if EOS in dist and (len(prefix) >= min_len or at_limit):
            yield list(prefix), lp + math.log(dist[EOS])
        if at_limit:
            return
        for tok, p in dist.items():
            if tok != EOS and p > 0:
                yield from walk((*prefix, tok), lp + math.log(p))

    yield from walk((), 0.0)


def ranked(scn: Scenario, c: SearchConfig, limit: int) -> list[tuple[list[int], float, float]]:
    """All outputs as (tokens, score, log_prob), best score first."""
    outs = [
        (toks, lp / float(length_norm(len(toks) + 1, c)), lp)
        for toks, lp in enumerate_outputs(scn, limit, c.min_len)
    ]
    return sorted(outs, key=lambda o: -o[1])


# --------------------------------------------------------------------------- (a) greedy


def test_greedy_takes_the_argmax_at_every_step() -> None:
    h = best(GARDEN, cfg("greedy"))
    assert h.tokens == [4, 6]  # 4 (.5 > .4), 6 (.4), EOS (.6 > .4)
    assert h.log_prob == pytest.approx(log(0.5, 0.4, 0.6), abs=TOL)
    assert h.score == pytest.approx(h.log_prob, abs=TOL)  # greedy scores by log-probability


def test_greedy_batch_results_follow_the_input_rows() -> None:
    hyps = run([GARDEN, MINLEN, LENGTH], cfg("greedy"), [3, 1, 4])
    assert [h[0].tokens for h in hyps] == [[4, 6], [], [4, 5, 6]]
    assert hyps[1][0].log_prob == pytest.approx(math.log(0.6), abs=TOL)
    assert hyps[2][0].log_prob == pytest.approx(log(0.6, 0.8, 0.8, 1.0), abs=TOL)


# --------------------------------------------------------------------------- (b) beam finds what greedy misses


def test_beam_finds_the_garden_path_hypothesis_that_greedy_misses() -> None:
    greedy = best(GARDEN, cfg("greedy"))
    beam = best(GARDEN, cfg("beam", beam_size=2))
    assert greedy.tokens == [4, 6]
    assert beam.tokens == [5, 6]
    assert beam.log_prob == pytest.approx(log(0.4, 0.9, 0.9), abs=TOL)
    assert beam.score == pytest.approx(beam.log_prob, abs=TOL)
    assert beam.log_prob > greedy.log_prob


# --------------------------------------------------------------------------- (c) length penalty


def test_no_length_penalty_prefers_the_likely_empty_output() -> None:
    h = best(LENGTH, cfg(beam_size=2))
    assert h.tokens == []
    assert h.log_prob == pytest.approx(math.log(0.4), abs=TOL)
    assert h.score == pytest.approx(math.log(0.4), abs=TOL)


def test_average_length_penalty_changes_the_ranking() -> None:
    hyps = run([LENGTH], cfg(beam_size=2, nbest=2, length_penalty="average"))[0]
    # [4,5,6]: log(.384) / 4 = -0.239   [4,5]: log(.096) / 3 = -0.781   []: log(.4) / 1 = -0.916
    assert [h.tokens for h in hyps] == [[4, 5, 6], [4, 5]]
    assert hyps[0].score == pytest.approx(log(0.6, 0.8, 0.8, 1.0) / 4, abs=TOL)
    assert hyps[0].log_prob == pytest.approx(log(0.6, 0.8, 0.8, 1.0), abs=TOL)
    assert hyps[1].score == pytest.approx(log(0.6, 0.8, 0.2) / 3, abs=TOL)


def test_gnmt_length_penalty_changes_the_ranking() -> None:
    hyps = run([LENGTH], cfg(beam_size=2, nbest=2, length_penalty="gnmt", alpha=0.6))[0]
    # lp(Y) = ((5 + |Y|) / 6) ** 0.6 with |Y| counting EOS
    # [4,5,6]: -0.9571 / 1.2754 = -0.7504     []: -0.9163 / 1 = -0.9163
    assert [h.tokens for h in hyps] == [[4, 5, 6], []]
    assert hyps[0].score == pytest.approx(log(0.6, 0.8, 0.8) / (9 / 6) ** 0.6, abs=TOL)
    assert hyps[0].log_prob == pytest.approx(log(0.6, 0.8, 0.8), abs=TOL)
    assert hyps[1].score == pytest.approx(math.log(0.4), abs=TOL)


def test_gnmt_alpha_zero_is_no_length_penalty() -> None:
    h = best(LENGTH, cfg(beam_size=2, length_penalty="gnmt", alpha=0.0))
    assert h.tokens == []
    assert h.score == pytest.approx(math.log(0.4), abs=TOL)


# --------------------------------------------------------------------------- (d) n-best


def test_nbest_order_and_exact_scores() -> None:
    hyps = run([GARDEN], cfg(beam_size=3, nbest=3))[0]
    # all outputs: [5,6] .324, [4,7] .15, [4,6] .12, [] .1, [4,8] .1, ... : the top three
    assert [h.tokens for h in hyps] == [[5, 6], [4, 7], [4, 6]]
    assert [h.log_prob for h in hyps] == pytest.approx(
        [log(0.4, 0.9, 0.9), log(0.5, 0.3), log(0.5, 0.4, 0.6)], abs=TOL
    )
    assert [h.score for h in hyps] == pytest.approx([h.log_prob for h in hyps], abs=TOL)


def test_nbest_with_a_narrow_beam_keeps_what_the_beam_saw() -> None:
    hyps = run([GARDEN], cfg(beam_size=2, nbest=2))[0]
    # beam 2 drops [4,7] at step 2 (alive: [5,6] .36 and [4,6] .2); [] and [4] were ranked 3rd+
    assert [h.tokens for h in hyps] == [[5, 6], [4, 6]]
    assert hyps[1].log_prob == pytest.approx(log(0.5, 0.4, 0.6), abs=TOL)


def test_nbest_larger_than_beam_is_rejected() -> None:
    src, lens = source([GARDEN])
    with pytest.raises(NmtError, match="nbest"):
        search(fake(), src, lens, cfg(beam_size=2, nbest=3))


# --------------------------------------------------------------------------- (e) EOS handling


@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_finished_hypotheses_exclude_eos_but_count_its_probability(method: str) -> None:
    h = best(MINLEN, cfg(method, min_len=2, beam_size=2))
    assert h.tokens == [4, 5]
    assert EOS not in h.tokens and PAD not in h.tokens
    assert h.log_prob == pytest.approx(log(0.4, 0.3, 0.8), abs=TOL)  # EOS's .8 included


@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_attention_has_one_row_per_output_step_including_eos(method: str) -> None:
    h = run([COVER], cfg(method, beam_size=2), [2], with_attention=True)[0][0]
    assert h.tokens == [4]
    assert h.attention is not None
    assert h.attention.shape == (2, 2)  # (tokens + EOS, src_len)
    torch.testing.assert_close(h.attention, torch.tensor([[0.7, 0.3], [1.0, 0.0]]))


# --------------------------------------------------------------------------- (f) max and min length


@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_max_len_b_forces_eos_at_the_limit_with_its_model_probability(method: str) -> None:
    # limit 4 pieces (EOS included); beam: min_len forbids the (likelier) early EOS until the limit
    h = best(LOOP, cfg(method, max_len_b=4, min_len=10, beam_size=2))
    assert h.tokens == [4, 4, 4]
    assert h.log_prob == pytest.approx(log(0.9, 0.9, 0.9, 0.05), abs=TOL)


@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_max_len_a_scales_the_limit_with_each_source_length(method: str) -> None:
    # limit = floor(1.5 * src_len + 1): 4 for 2 source pieces, 7 for 4, 2 for 1
    hyps = run(
        [LOOP, LOOP, LOOP], cfg(method, max_len_a=1.5, max_len_b=1, min_len=10, beam_size=2), [2, 4, 1]
    )
    assert [len(h[0].tokens) for h in hyps] == [3, 6, 1]
    assert [h[0].log_prob for h in hyps] == pytest.approx(
        [log(*[0.9] * 3, 0.05), log(*[0.9] * 6, 0.05), log(0.9, 0.05)], abs=TOL
    )


def test_limit_of_one_piece_gives_an_empty_output() -> None:
    h = best(GARDEN, cfg("greedy", max_len_b=1))
    assert h.tokens == []
    assert h.log_prob == pytest.approx(math.log(0.1), abs=TOL)


@pytest.mark.parametrize(
    ("min_len", "tokens", "probs"),
    [
        (0, [], [0.6]),
        (1, [4], [0.4, 0.7]),
        (2, [4, 5], [0.4, 0.3, 0.8]),
        (3, [4, 5, 6], [0.4, 0.3, 0.2, 1.0]),
    ],
)
@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_min_len_forbids_eos_before_that_many_pieces(
    method: str, min_len: int, tokens: list[int], probs: list[float]
) -> None:
    h = best(MINLEN, cfg(method, min_len=min_len, beam_size=2))
    assert h.tokens == tokens
    assert h.log_prob == pytest.approx(log(*probs), abs=TOL)


# --------------------------------------------------------------------------- (g) no_repeat_ngram


def has_repeated_ngram(tokens: list[int], n: int) -> bool:
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(grams) != len(set(grams))


def test_greedy_repeats_without_the_constraint() -> None:
    h = best(REPEAT, cfg("greedy", max_len_b=6))
    assert h.tokens == [4, 4, 4, 4, 4]
    assert h.log_prob == pytest.approx(log(*[0.5] * 5, 0.05), abs=TOL)


@pytest.mark.parametrize(
    ("n", "tokens", "probs"),
    [
        # every piece once: 4, 5, 6, then only EOS is left
        (1, [4, 5, 6], [0.5, 0.3, 0.15, 0.05]),
        # 4 4 | (4,4) seen: 5 | 4 | (4,4),(4,5) seen: 6 | 4 | (4,4),(4,5),(4,6) seen: EOS
        (2, [4, 4, 5, 4, 6, 4], [0.5, 0.5, 0.3, 0.5, 0.15, 0.5, 0.05]),
    ],
)
@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_no_repeat_ngram_blocks_repeats(method: str, n: int, tokens: list[int], probs: list[float]) -> None:
    h = best(REPEAT, cfg(method, no_repeat_ngram=n, beam_size=1))
    assert h.tokens == tokens
    assert h.log_prob == pytest.approx(log(*probs), abs=TOL)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_no_beam_hypothesis_repeats_an_ngram(n: int) -> None:
    hyps = run([REPEAT, LOOP, *RANDOM_IDS], cfg(beam_size=4, nbest=4, no_repeat_ngram=n, max_len_b=12))
    for sentence in hyps:
        assert len(sentence) == 4
        for h in sentence:
            assert not has_repeated_ngram(h.tokens, n), h.tokens


# --------------------------------------------------------------------------- (h) beam 1 == greedy


FAKE_IDS = [GARDEN, LENGTH, LOOP, MINLEN, REPEAT, NEAR_TIE, *RANDOM_IDS]


# scenarios whose every prefix can continue (min_len must not leave a row without any allowed piece)
OPEN_IDS = [LOOP, REPEAT, *RANDOM_IDS]


@pytest.mark.parametrize(
    ("ids", "extra"),
    [
        (FAKE_IDS, {}),
        (OPEN_IDS, {"min_len": 2}),
        (FAKE_IDS, {"no_repeat_ngram": 2}),
        (FAKE_IDS, {"max_len_b": 3}),
        (OPEN_IDS, {"min_len": 1, "no_repeat_ngram": 1, "max_len_b": 4}),
    ],
    ids=["plain", "min_len", "no_repeat", "short_limit", "combined"],
)
def test_beam_one_equals_greedy_on_the_fake_model(ids: list[int], extra: dict) -> None:
    greedy = run(ids, cfg("greedy", **extra))
    beam = run(ids, cfg("beam", beam_size=1, **extra))
    for g, b in zip(greedy, beam):
        assert b[0].tokens == g[0].tokens
        assert b[0].log_prob == pytest.approx(g[0].log_prob, abs=TOL)


@pytest.mark.parametrize("penalty", ["gnmt", "average"])
def test_beam_one_with_a_length_penalty_searches_on_past_greedys_eos(penalty: str) -> None:
    # Greedy stops at EOS (.5). Beam 1 keeps its exact stopping rule: the alive [4] (.49) can still
    # beat [] once the length penalty is applied, and it does: log(.49)/lp(2) > log(.5)/lp(1).
    greedy = best(NEAR_TIE, cfg("greedy"))
    beam = best(NEAR_TIE, cfg("beam", beam_size=1, length_penalty=penalty))
    assert greedy.tokens == []
    assert beam.tokens == [4]
    c = cfg("beam", beam_size=1, length_penalty=penalty)
    assert beam.score > greedy.log_prob / length_norm(len(greedy.tokens) + 1, c)


# --------------------------------------------------------------------------- (i) batch invariance
# (real models, alone and in batches, in float64 and float32: tests/unit/test_search_invariance.py)


def test_fake_model_batch_equals_each_sentence_alone() -> None:
    ids = [GARDEN, LENGTH, COVER, MINLEN, *RANDOM_IDS]
    lengths = [3, 5, 2, 1, 4, 2, 6, 3, 1, 2]
    c = cfg(beam_size=3, nbest=3, length_penalty="gnmt", coverage_penalty=0.3, max_len_a=1.0, max_len_b=3)
    together = run(ids, c, lengths)
    for i, (sid, n) in enumerate(zip(ids, lengths)):
        alone = run([sid], c, [n])[0]
        assert [h.tokens for h in alone] == [h.tokens for h in together[i]]
        assert [h.score for h in alone] == pytest.approx([h.score for h in together[i]], abs=TOL)


# --------------------------------------------------------------------------- (j) exactness


@pytest.mark.parametrize("penalty", ["none", "average", "gnmt"])
def test_exhaustive_beam_equals_brute_force(penalty: str) -> None:
    # pieces {EOS,4,5,6}, limit 5: 1+3+9+27+81 = 121 outputs; at most 27*4 = 108 candidates per step,
    # so a beam of 128 keeps every one of them and the search is exhaustive
    limit, nbest = 5, 5
    c = cfg(beam_size=128, nbest=nbest, max_len_b=limit, length_penalty=penalty)
    hyps = run(RANDOM_IDS, c)
    for sid, got in zip(RANDOM_IDS, hyps):
        want = ranked(SCENARIOS[sid], c, limit)[:nbest]
        assert [h.tokens for h in got] == [w[0] for w in want]
        assert [h.score for h in got] == pytest.approx([w[1] for w in want], abs=TOL)
        assert [h.log_prob for h in got] == pytest.approx([w[2] for w in want], abs=TOL)


@pytest.mark.parametrize("min_len", [0, 2])
def test_exhaustive_beam_with_min_len_equals_brute_force(min_len: int) -> None:
    limit = 5
    c = cfg(beam_size=128, nbest=3, max_len_b=limit, length_penalty="gnmt", min_len=min_len)
    for sid, got in zip(RANDOM_IDS, run(RANDOM_IDS, c)):
        want = ranked(SCENARIOS[sid], c, limit)[:3]
        assert [h.tokens for h in got] == [w[0] for w in want]
        assert [h.score for h in got] == pytest.approx([w[1] for w in want], abs=TOL)


@pytest.mark.parametrize("penalty", ["none", "average", "gnmt"])
def test_early_stop_returns_the_brute_force_best(penalty: str) -> None:
    # the garden path and length scenarios settle long before the limit of 10 pieces
    c = cfg(beam_size=8, max_len_b=10, length_penalty=penalty)
    for sid in (GARDEN, LENGTH, MINLEN):
        model = fake()
        src, lens = source([sid])
        got = search(model, src, lens, c)[0][0]
        want = ranked(SCENARIOS[sid], c, 10)[0]
        assert got.tokens == want[0]
        assert got.score == pytest.approx(want[1], abs=TOL)


def test_early_stop_ends_the_search_before_the_limit() -> None:
    model = fake()
    src, lens = source([GARDEN])
    got = search(model, src, lens, cfg(beam_size=2, max_len_b=50))[0][0]
    # step 3 finishes [5,6] (.324); nothing alive (best [4,6,9] .08) can beat it: stop after 3 steps
    assert got.tokens == [5, 6]
    assert model.steps == 3


def test_beam_first_step_runs_once_per_sentence_then_k_rows_each() -> None:
    model = fake()
    src, lens = source([GARDEN, LENGTH])
    search(model, src, lens, cfg(beam_size=3, max_len_b=50))
    assert model.rows[:2] == [2, 6]  # one BOS row per sentence, then 3 hypotheses each


# --------------------------------------------------------------------------- (k) coverage penalty


def test_without_coverage_penalty_the_likelier_hypothesis_wins() -> None:
    h = run([COVER], cfg(beam_size=2), [2])[0][0]
    assert h.tokens == [4]
    assert h.score == pytest.approx(math.log(0.6), abs=TOL)


def test_coverage_penalty_prefers_the_hypothesis_that_covers_the_source() -> None:
    hyps = run([COVER], cfg(beam_size=2, nbest=2, coverage_penalty=0.5), [2])[0]
    # [4]: coverage [.7+1, .3+0] -> .5*log(.3) ; [5]: coverage [.7+.3, .3+.7] = [1, 1] -> 0
    assert [h.tokens for h in hyps] == [[5], [4]]
    assert hyps[0].score == pytest.approx(math.log(0.4), abs=TOL)
    assert hyps[1].score == pytest.approx(math.log(0.6) + 0.5 * math.log(0.3), abs=TOL)
    assert hyps[1].log_prob == pytest.approx(math.log(0.6), abs=TOL)  # the penalty is not in log_prob


def test_coverage_of_a_never_attended_position_is_clamped_at_1e_6() -> None:
    hyps = run([COVER_NEVER], cfg(beam_size=2, nbest=2, coverage_penalty=0.1), [2])[0]
    # [4] never attends position 1: 0.1 * log(1e-6) = -1.38; [5] covers both: 0
    assert [h.tokens for h in hyps] == [[5], [4]]
    assert hyps[1].score == pytest.approx(math.log(0.6) + 0.1 * math.log(1e-6), abs=TOL)


def test_coverage_penalty_ignores_padding_and_combines_with_the_length_penalty() -> None:
    c = cfg(beam_size=2, nbest=2, coverage_penalty=0.5, length_penalty="gnmt")
    # the COVER sentence (2 pieces) is padded to 6 by its batch neighbour: padding is never "uncovered"
    hyps = run([COVER, GARDEN], c, [2, 6])[0]
    norm = (7 / 6) ** 0.6
    assert [h.tokens for h in hyps] == [[5], [4]]
    assert hyps[0].score == pytest.approx(math.log(0.4) / norm, abs=TOL)
    assert hyps[1].score == pytest.approx(math.log(0.6) / norm + 0.5 * math.log(0.3), abs=TOL)


# --------------------------------------------------------------------------- (l) sampling


def test_sampling_with_a_fixed_seed_repeats() -> None:
    ids = [COIN] * 50 + RANDOM_IDS
    a = run(ids, cfg("sample", seed=7))
    b = run(ids, cfg("sample", seed=7))
    assert [h[0].tokens for h in a] == [h[0].tokens for h in b]
    assert [h[0].log_prob for h in a] == [h[0].log_prob for h in b]


def test_sampling_draws_from_the_model_distribution() -> None:
    n = 3000
    hyps = run([COIN] * n, cfg("sample", seed=1, temperature=1.0))
    counts = {t: sum(h[0].tokens == [t] for h in hyps) / n for t in (4, 5, 6)}
    assert counts[4] == pytest.approx(0.7, abs=0.03)
    assert counts[5] == pytest.approx(0.2, abs=0.03)
    assert counts[6] == pytest.approx(0.1, abs=0.03)
    for h in hyps:  # log_prob is the model's, whatever was drawn
        assert h[0].log_prob == pytest.approx(SCENARIOS[COIN].log_prob(h[0].tokens), abs=TOL)


def test_sampling_seeds_differ() -> None:
    a = run([COIN] * 200, cfg("sample", seed=1))
    b = run([COIN] * 200, cfg("sample", seed=2))
    assert [h[0].tokens for h in a] != [h[0].tokens for h in b]


# hand-set scenarios whose best piece is always clearly ahead (random ones may have near ties)
CLEAR_IDS = [GARDEN, LENGTH, MINLEN, REPEAT, COIN]


@pytest.mark.parametrize(
    ("ids", "extra"),
    [
        (CLEAR_IDS * 5, {"temperature": 0.01}),
        ((CLEAR_IDS + RANDOM_IDS) * 5, {"top_k": 1}),
        ((CLEAR_IDS + RANDOM_IDS) * 5, {"top_k": 1, "temperature": 5.0}),
    ],
    ids=["cold", "top1", "top1-hot"],
)
def test_cold_or_top1_sampling_is_greedy(ids: list[int], extra: dict) -> None:
    greedy = run(ids, cfg("greedy"))
    sampled = run(ids, cfg("sample", seed=3, **extra))
    assert [h[0].tokens for h in sampled] == [h[0].tokens for h in greedy]
    assert [h[0].log_prob for h in sampled] == pytest.approx([h[0].log_prob for h in greedy], abs=TOL)


def test_top_k_never_draws_outside_the_k_most_likely() -> None:
    hyps = run([COIN] * 500, cfg("sample", seed=5, top_k=2, temperature=3.0))
    firsts = {h[0].tokens[0] for h in hyps}
    assert firsts == {4, 5}


# --------------------------------------------------------------------------- (m) decision margins


def margins_of(scenario_ids: list[int], c: SearchConfig) -> list[float]:
    src, lens = source(scenario_ids)
    margins = torch.full((len(scenario_ids),), math.inf, dtype=torch.float64)
    search(fake(), src, lens, c, margins=margins)
    return margins.tolist()


def test_greedy_margin_is_the_closest_gap_between_the_best_piece_and_the_next() -> None:
    # NEAR_TIE: EOS .5 against 4 .49 at the only decision; THREE: 4 .5 against 5 .3, then only EOS
    got = margins_of([NEAR_TIE, THREE, LOOP], cfg("greedy", max_len_b=3))
    assert got[0] == pytest.approx(math.log(0.5 / 0.49), abs=TOL)
    assert got[1] == pytest.approx(math.log(0.5 / 0.3), abs=TOL)
    assert got[2] == pytest.approx(math.log(0.9 / 0.05), abs=TOL)  # 4 (.9) against 5 and EOS (.05)


def test_beam_margin_covers_the_cuts_of_its_selections() -> None:
    # beam 1 on THREE: the two kept candidates are 4 (.5) and 5 (.3), the cut below them is EOS (.2):
    # log(.3/.2) = 0.405; the alive cut between 4 and 5 is log(.5/.3) = 0.511; then only EOS is left
    [got] = margins_of([THREE], cfg(beam_size=1))
    assert got == pytest.approx(math.log(0.3 / 0.2), abs=TOL)


def test_a_tie_has_margin_zero() -> None:
    tie = Scenario({(): {4: 0.4, 5: 0.4, EOS: 0.2}})
    src, lens = source([27])
    for c in (cfg("greedy"), cfg(beam_size=2)):
        margins = torch.full((1,), math.inf, dtype=torch.float64)
        search(FakeModel({27: tie}), src, lens, c, margins=margins)
        assert float(margins[0]) == 0.0


# --------------------------------------------------------------------------- the reference itself


def test_brute_force_reference_enumerates_every_output_once() -> None:
    # limit 5 with three real pieces: outputs of 0..4 pieces, 3**k of each length
    outs = list(enumerate_outputs(RandomScenario(seed=1), limit=5))
    assert sorted(len(t) for t, _ in outs) == sorted(k for k in range(5) for _ in range(3**k))
    assert len({tuple(t) for t, _ in outs}) == len(outs)
    # without a limit in reach, the probabilities of all outputs of GARDEN sum to 1
    assert sum(math.exp(lp) for _, lp in enumerate_outputs(GARDEN_SCN, limit=50)) == pytest.approx(1.0)


# --------------------------------------------------------------------------- a trained model


@pytest.mark.slow
def test_beam_finds_at_least_greedys_model_score_on_a_briefly_trained_model(toy_run: ToyRun) -> None:
    # the toy model after 200 of its 800 steps: far from perfect, so beam and greedy often differ
    model, src_tok, _, _ = load_model(
        toy_run.run_dir / "checkpoints" / "step_0000200.pt", torch.device("cpu")
    )
    lines = read_lines(toy_run.corpus / "toy" / "test.src")[:60]
    ids = src_tok.encode(lines)
    greedy = decode_ids(model, ids, cfg("greedy", max_len_a=2.0, max_len_b=10), torch.device("cpu"))
    beam = decode_ids(model, ids, cfg(beam_size=5, max_len_a=2.0, max_len_b=10), torch.device("cpu"))
    at_least = sum(b[0].log_prob >= g[0].log_prob - 1e-4 for g, b in zip(greedy, beam))
    better = sum(b[0].log_prob > g[0].log_prob + 1e-4 for g, b in zip(greedy, beam))
    assert at_least >= 0.95 * len(lines)
    assert better > 0  # the beam does find better hypotheses than greedy


# --------------------------------------------------------------------------- (n) the beam's stopping rule


def test_first_k_stops_once_k_hypotheses_have_finished() -> None:
    # LENGTH, beam 2, GNMT 0.6: [] finishes at step 1 (-0.916), [4] at step 2 (log .12 / 1.097 = -1.93):
    # two finished -> first_k stops with [], where the exact rule goes on and finds [4,5,6] (-0.750)
    c_exact = cfg(beam_size=2, length_penalty="gnmt", alpha=0.6)
    c_first = cfg(beam_size=2, length_penalty="gnmt", alpha=0.6, stop="first_k")
    src, lens = source([LENGTH])
    exact_model, first_model = fake(), fake()
    exact = search(exact_model, src, lens, c_exact)[0][0]
    first = search(first_model, src, lens, c_first)[0][0]
    assert exact.tokens == [4, 5, 6] and first.tokens == []
    assert first.score == pytest.approx(math.log(0.4), abs=TOL)
    assert first_model.steps == 2 < exact_model.steps


def test_first_k_without_a_length_penalty_finds_the_garden_path() -> None:
    got = best(GARDEN, cfg(beam_size=2, stop="first_k"))
    assert got.tokens == [5, 6]
