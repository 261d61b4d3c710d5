"""nmt.data.text: typed text to the corpus's form and the model's output back to plain text."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nmt.config import DataConfig, Normalize, Pretokenize, TextConfig
from nmt.data.text import TextProcessor, join_segmented

SMALL_PARALLEL = DataConfig(
    name="x",
    corpus="x",
    segmented=True,
    processed=True,
    src_text=TextConfig(pretokenize=Pretokenize.moses, lowercase=True),
)


@pytest.mark.parametrize(
    ("typed", "corpus_form"),
    [
        ("He didn't care for swimming.", "he didn 't care for swimming ."),
        ("It's a cloudy day!", "it 's a cloudy day !"),
        ("I'm 20 years old, Tom.", "i 'm 20 years old , tom ."),
        ('"Hello," she said.', '" hello , " she said .'),
        ("Where is the station?", "where is the station ?"),
    ],
)
def test_typed_english_becomes_small_parallel_enja_english(typed: str, corpus_form: str) -> None:
    assert TextProcessor.from_data(SMALL_PARALLEL).source(typed).text == corpus_form


def test_source_words_keep_their_case_for_copying() -> None:
    p = TextProcessor.from_data(SMALL_PARALLEL).source("Tom didn't see Mary.")
    assert p.words == ["Tom", "didn", "'t", "see", "Mary", "."]
    assert p.text.split() == [w.lower() for w in p.words]  # word i of the model's input is words[i]


def test_nfkc_normalisation_comes_first() -> None:
    cfg = TextConfig(normalize=Normalize.nfkc, lowercase=True)
    tp = TextProcessor(cfg, TextConfig(), "en", "ja", False)
    assert tp.source("ＡＢＣ　１２３").text == "abc 123"


def test_without_processing_the_line_is_untouched() -> None:
    tp = TextProcessor.from_data(DataConfig(name="x", corpus="x"))
    assert not tp.changes_source and not tp.changes_target
    line = "  Raw TEXT, as typed.\u00a0"
    assert tp.source(line).text == line
    assert tp.target("そのまま の 出力") == "そのまま の 出力"


@pytest.mark.parametrize(
    ("segmented", "plain"),
    [
        ("彼 は 水泳 が 得意 で は な かっ た 。", "彼は水泳が得意ではなかった。"),
        ("１０ 時 前 に 戻 ら な けれ ば な ら な い 。", "１０時前に戻らなければならない。"),
        ("New York に 住 ん で い る 。", "New Yorkに住んでいる。"),
        ("tom は 20 歳 です", "tomは20歳です"),
        ("iPhone 12 Pro を 買 う", "iPhone 12 Proを買う"),
        ("", ""),
        ("  ", ""),
    ],
)
def test_segmented_japanese_is_joined(segmented: str, plain: str) -> None:
    assert join_segmented(segmented) == plain


def test_output_joined_unless_the_segmentation_is_kept() -> None:
    tp = TextProcessor.from_data(SMALL_PARALLEL)
    assert tp.target("駅 は どこ で す か 。") == "駅はどこですか。"
    assert tp.target("駅 は どこ で す か 。", keep_segmentation=True) == "駅 は どこ で す か 。"


def test_a_tokenised_target_is_detokenised() -> None:
    tgt = TextConfig(pretokenize=Pretokenize.moses)
    tp = TextProcessor(TextConfig(), tgt, "ja", "en", False)
    assert tp.target_corpus("He didn't go.") == "He didn 't go ."
    assert tp.target("He didn 't go .") == "He didn't go."


def test_which_jobs_need_moses() -> None:
    src_moses = TextProcessor.from_data(SMALL_PARALLEL)
    assert src_moses.needs_moses() and not src_moses.needs_moses(processed_input=True)
    tgt_moses = TextProcessor(TextConfig(), TextConfig(pretokenize=Pretokenize.moses), "ja", "en", False)
    assert tgt_moses.needs_moses(processed_input=True)
    assert not tgt_moses.needs_moses(processed_input=True, keep_segmentation=True)
    assert not TextProcessor(TextConfig(), TextConfig(), "en", "ja", True).needs_moses()


def test_prefetching_moses_imports_it_in_the_background() -> None:
    """In a fresh process: the thread imports sacremoses, and a tokeniser built after it works."""
    code = (
        "import sys\nfrom nmt.data.text import prefetch_moses, TextProcessor\n"
        "from tests.unit.test_text import SMALL_PARALLEL\n"
        "t = prefetch_moses()\nt.join(120)\nprint('sacremoses' in sys.modules, not t.is_alive())\n"
        'print(TextProcessor.from_data(SMALL_PARALLEL).source("He didn\'t go.").text)'
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],
    ).stdout
    assert out.splitlines() == ["True True", "he didn 't go ."]
