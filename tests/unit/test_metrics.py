"""nmt.metrics: SacreBLEU BLEU/chrF with the tokenizer chosen by language, segmented-text scoring."""

from __future__ import annotations

import pytest

from nmt import NmtError
from nmt.metrics import bleu, chrf, default_tokenize, score_all, strip_spaces

JA_REF = ["猫 が 魚 を 食べ た 。", "今日 は 雨 が 降っ て いる 。", "私 は 学生 です 。"]
JA_HYP = ["猫 が 魚 を 食べ る 。", "今日 は 雨 です 。", "私 は 学生 です 。"]


@pytest.mark.parametrize(
    ("lang", "tok"), [("ja", "ja-mecab"), ("zh", "zh"), ("ko", "ko-mecab"), ("en", "13a")]
)
def test_default_tokenizer_follows_the_language(lang: str, tok: str) -> None:
    assert default_tokenize(lang) == tok


def test_score_all_for_japanese_uses_mecab() -> None:
    raw_ref, raw_hyp = strip_spaces(JA_REF), strip_spaces(JA_HYP)
    scores = score_all(raw_hyp, raw_ref, "ja")
    assert [s.metric for s in scores] == ["BLEU", "chrF"]
    assert "tok:ja-mecab" in scores[0].signature
    assert 0 < scores[0].score < 100


def test_explicit_tokenizer_wins() -> None:
    scores = score_all(["a b c d"], ["a b c d"], "ja", tokenize="char")
    assert "tok:char" in scores[0].signature


def test_segmented_scores_both_ways() -> None:
    scores = score_all(JA_HYP, JA_REF, "ja", segmented=True)
    assert [s.metric for s in scores] == ["BLEU", "BLEU", "chrF"]
    seg, raw, ch = scores
    assert "tok:none" in seg.signature and "-tok none" in seg.detail
    assert seg.score == pytest.approx(bleu(JA_HYP, JA_REF, "none").score)
    assert "tok:ja-mecab" in raw.signature and "spaces removed" in raw.detail
    assert raw.score == pytest.approx(bleu(strip_spaces(JA_HYP), strip_spaces(JA_REF), "ja-mecab").score)
    assert ch.score == pytest.approx(chrf(strip_spaces(JA_HYP), strip_spaces(JA_REF)).score)
    assert seg.score != raw.score  # the two tokenisations really differ


def test_segmented_and_raw_japanese_agree_on_the_mecab_score() -> None:
    # the headline "spaces removed" score of segmented text equals the raw-text score
    seg = score_all(JA_HYP, JA_REF, "ja", segmented=True)[1]
    raw = score_all(strip_spaces(JA_HYP), strip_spaces(JA_REF), "ja")[0]
    assert seg.score == pytest.approx(raw.score)


@pytest.mark.parametrize(("lang", "segmented"), [("ja", False), ("ja", True), ("en", False)])
def test_identical_hypothesis_and_reference_score_100(lang: str, segmented: bool) -> None:
    for s in score_all(JA_REF, JA_REF, lang, segmented=segmented):
        assert s.score == pytest.approx(100.0), s


def test_length_mismatch_is_an_error() -> None:
    with pytest.raises(NmtError, match="2 hypotheses but 3 references"):
        score_all(JA_HYP[:2], JA_REF, "ja")


def test_strip_spaces_removes_all_whitespace() -> None:
    assert strip_spaces(["a b\tc", "  d  "]) == ["abc", "d"]


def test_score_as_dict() -> None:
    d = score_all(["a b"], ["a b"], "en")[0].as_dict()
    assert set(d) == {"metric", "score", "signature", "detail"}


def test_a_repeat_is_a_span_of_two_or_more_tokens_said_twice_in_a_row() -> None:
    from nmt.metrics import has_repeat

    assert has_repeat(["the", "temple", "the", "temple", "was"])
    assert has_repeat(["x", "a", "b", "c", "a", "b", "c", "y"])  # a three-token loop
    assert not has_repeat(["a", "a", "b"])  # one token twice: language does that ("very very")
    assert not has_repeat(["a", "b", "c", "a", "b", "d"])  # not back to back
    assert not has_repeat([])


def test_repetition_is_the_share_of_lines_in_the_bleu_tokens() -> None:
    from nmt.metrics import repetition

    lines = ["京都は日本の古都です。京都は日本の古都です。", "京都は古い都です。", "", "a b a b"]
    assert repetition(lines, "ja-mecab") == 0.5  # MeCab splits the Japanese into words
    assert repetition(lines, "none") == 0.25  # without it only the spaced line has tokens to repeat
    assert repetition([], "none") == 0.0
