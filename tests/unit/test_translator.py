"""nmt.translator: one translation per input line, in order; bad lines stop or are repaired, never dropped."""

from __future__ import annotations

import io
import logging
import threading

import pytest
import torch

from nmt import NmtError
from nmt.config import BadLine, LengthPenalty, Precision, SearchConfig, SearchMethod
from nmt.data.tokenizer import EOS, UNK, Tokenizer
from nmt.data.toy import make_pairs
from nmt.model.seq2seq import Seq2Seq
from nmt.runtime import DecodePool
from nmt.textio import read_raw_lines
from nmt.translator import Options, Translator, decode_ids
from tests.helpers import tiny_model_config
from tests.unit.fake_model import FakeModel, Scenario

CPU = torch.device("cpu")
LINES = [s for s, _ in make_pairs(24, seed=3)]
# a random model seldom ends a sentence: a short fixed limit keeps every search a few steps long
LIMIT = dict(max_len_a=0.0, max_len_b=6)


@pytest.fixture(scope="module")
def model(toy_tokenizers: tuple[Tokenizer, Tokenizer]) -> Seq2Seq:
    """A random model in float64: its translations do not depend on the batch they are in (in
    float32 two near-tied candidates may rank differently in batches of other shapes; see
    tests/unit/test_search_invariance.py)."""
    torch.manual_seed(0)
    m = Seq2Seq(tiny_model_config(init_range=0.5), len(toy_tokenizers[0]), len(toy_tokenizers[1]))
    return m.double().eval()


def translator(
    model: Seq2Seq,
    toks: tuple[Tokenizer, Tokenizer],
    method: str = "greedy",
    on_bad_line: BadLine = BadLine.error,
    max_input_len: int = 250,
    batch_size: int = 64,
    **search: object,
) -> Translator:
    cfg = SearchConfig(method=SearchMethod(method), **LIMIT, **search)  # type: ignore[arg-type]
    options = Options(batch_size=batch_size, max_input_len=max_input_len, on_bad_line=on_bad_line)
    return Translator(model, toks[0], toks[1], cfg, CPU, options)


@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_one_output_per_line_in_order(model: Seq2Seq, toy_tokenizers: tuple, method: str) -> None:
    tr = translator(model, toy_tokenizers, method)
    lines = LINES[:6] + [""] + LINES[6:12] + ["   ", ""] + LINES[12:]
    out = tr.translate_detailed(lines, "in.txt")
    assert len(out) == len(lines)
    alone = [tr.translate_detailed([line])[0] for line in lines]
    assert [t.text for t in out] == [t.text for t in alone]
    assert [t.score for t in out] == pytest.approx([t.score for t in alone], abs=1e-9)


def test_sampling_follows_the_line_not_the_batch(model: Seq2Seq, toy_tokenizers: tuple) -> None:
    """A sampled line depends on the seed and its line number only: batch size and chunking do not matter."""
    raw = [line.encode() for line in LINES]
    runs = [
        [
            t.text
            for t in translator(model, toy_tokenizers, "sample", batch_size=bs).stream(iter(raw), "in", chunk)
        ]
        for bs, chunk in ((64, 10_000), (8, 5), (1000, 7))
    ]
    assert runs[0] == runs[1] == runs[2]
    other_seed = translator(model, toy_tokenizers, "sample", seed=99).stream(iter(raw), "in", 10_000)
    assert [t.text for t in other_seed] != runs[0]


@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_workers_give_the_same_results_in_order(model: Seq2Seq, toy_tokenizers: tuple, method: str) -> None:
    tr = translator(model, toy_tokenizers, method)
    ids = tr.encode(LINES, "in.txt", 1)
    cfg = tr.cfg
    one_seen: list[list[int]] = []
    two_seen: list[list[int]] = []
    one = decode_ids(model, ids, cfg, CPU, max_sentences=3, on_batch=lambda idx: one_seen.append(list(idx)))
    threads_used = set()

    class Recording:  # the model, noting the thread of every batch
        def encode(self, *args: object) -> object:
            threads_used.add(threading.current_thread().name)
            return model.encode(*args)

        def decode_step(self, *args: object) -> object:
            return model.decode_step(*args)

    pool = DecodePool(2, torch.get_num_threads())  # the same thread count as above: the same arithmetic
    try:
        two = decode_ids(
            Recording(),
            ids,
            cfg,
            CPU,
            max_sentences=3,
            on_batch=lambda idx: two_seen.append(list(idx)),
            pool=pool,
        )
    finally:
        pool.close()
    assert len(threads_used) == 2 and threading.current_thread().name not in threads_used
    assert len(one_seen) == len(two_seen) == 8  # 24 sentences, 3 a batch: 8 batches
    assert two_seen == one_seen  # progress in batch order, every sentence once
    assert sorted(i for idx in two_seen for i in idx) == list(range(len(LINES)))
    assert [[h.tokens for h in hs] for hs in two] == [[h.tokens for h in hs] for hs in one]
    assert [[h.score for h in hs] for hs in two] == [[h.score for h in hs] for hs in one]


def test_the_translator_keeps_one_pool_of_workers(model: Seq2Seq, toy_tokenizers: tuple) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # workers=2 needs two threads to share out
    try:
        _check_one_pool(model, toy_tokenizers)
    finally:
        torch.set_num_threads(threads)


def _check_one_pool(model: Seq2Seq, toy_tokenizers: tuple) -> None:
    cfg = SearchConfig(method=SearchMethod.greedy, **LIMIT)
    tr = Translator(model, *toy_tokenizers, cfg, CPU, Options(batch_size=8, workers=2))
    first = tr.translate(LINES)
    pool = tr._decode_pool()
    assert pool is not None and pool.workers == 2
    assert tr.translate(LINES) == first and tr._decode_pool() is pool
    tr.close()
    assert translator(model, toy_tokenizers).translate(LINES) == first  # workers=1 alike
    with Translator(model, *toy_tokenizers, cfg, CPU, Options(batch_size=8, workers=2)) as tr:
        assert tr.translate(LINES) == first
        pool = tr._decode_pool()
    assert pool is not None and tr._pool is None
    with pytest.raises(RuntimeError, match="shutdown"):  # closed on leaving the block
        list(pool.map(abs, [1, 2], CPU))
    one = Translator(model, *toy_tokenizers, cfg, CPU, Options(batch_size=8, workers=1))
    assert one._decode_pool() is None
    bf16 = Translator(model, *toy_tokenizers, cfg, CPU, Options(batch_size=8, precision=Precision.bf16))
    assert bf16._decode_pool() is None  # auto under bf16 autocast: one batch at a time
    asked = Translator(
        model, *toy_tokenizers, cfg, CPU, Options(batch_size=8, workers=2, precision=Precision.bf16)
    )
    assert asked._decode_pool() is not None
    asked.close()


def test_blank_lines_give_empty_translations_without_the_model(model: Seq2Seq, toy_tokenizers: tuple) -> None:
    out = translator(model, toy_tokenizers).translate_detailed(["", "  ", "\t", LINES[0]])
    assert [t.text for t in out[:3]] == ["", "", ""]
    assert all(t.score is None and t.log_prob is None and t.nbest == [] for t in out[:3])
    assert out[3].score is not None


def test_only_blank_lines_never_reach_the_model(toy_tokenizers: tuple) -> None:
    class NoModel:
        def encode(self, src: torch.Tensor, src_lens: torch.Tensor) -> None:
            raise AssertionError("the model must not be called")

        decode_step = encode

    cfg = SearchConfig(method=SearchMethod.beam)
    tr = Translator(NoModel(), toy_tokenizers[0], toy_tokenizers[1], cfg, CPU)  # type: ignore[arg-type]
    assert tr.translate(["", " ", ""]) == ["", "", ""]
    assert tr.translate([]) == []


def test_output_never_contains_a_newline(model: Seq2Seq, toy_tokenizers: tuple) -> None:
    out = translator(model, toy_tokenizers).translate_detailed(LINES)
    assert all("\n" not in t.text and "\r" not in t.text for t in out)


def test_nbest_is_best_first(model: Seq2Seq, toy_tokenizers: tuple) -> None:
    tr = translator(model, toy_tokenizers, "beam", beam_size=4, nbest=3, length_penalty=LengthPenalty.gnmt)
    for t in tr.translate_detailed(LINES[:8]):
        assert len(t.nbest) == 3
        assert t.nbest[0] == (t.text, t.score, t.log_prob)
        scores = [s for _, s, _ in t.nbest]
        assert scores == sorted(scores, reverse=True)


def test_too_long_line_is_an_error_naming_the_line(model: Seq2Seq, toy_tokenizers: tuple) -> None:
    tr = translator(model, toy_tokenizers, max_input_len=12)
    long_line = " ".join(["red cat"] * 20)
    with pytest.raises(NmtError) as e:
        tr.translate_detailed([LINES[0], LINES[1], long_line], "doc.en", first_lineno=41)
    msg = str(e.value)
    assert "doc.en:43:" in msg and "max_input_len=12" in msg


def test_too_long_line_is_truncated_with_a_warning_on_fix(
    model: Seq2Seq, toy_tokenizers: tuple, caplog: pytest.LogCaptureFixture
) -> None:
    tr = translator(model, toy_tokenizers, on_bad_line=BadLine.fix, max_input_len=12)
    long_line = " ".join(["red cat"] * 20)
    with caplog.at_level(logging.WARNING, logger="nmt"):
        out = tr.translate_detailed([LINES[0], long_line], "doc.en")
    assert len(out) == 2
    assert "doc.en:2" in caplog.text and "truncated to 12" in caplog.text
    # the same as translating the first 12 pieces
    ids = toy_tokenizers[0].encode([long_line])[0][:12]
    want = decode_ids(model, [ids], tr.cfg, CPU)[0][0]
    assert out[1].text == toy_tokenizers[1].decode([want.tokens])[0]


def test_check_line_with_invalid_utf8(
    model: Seq2Seq, toy_tokenizers: tuple, caplog: pytest.LogCaptureFixture
) -> None:
    raw = b"red \xff cat"
    with pytest.raises(NmtError) as e:
        translator(model, toy_tokenizers).check_line(raw, "in.en", 7)
    assert "in.en:7" in str(e.value) and "invalid UTF-8" in str(e.value) and "on_bad_line=fix" in str(e.value)
    fixer = translator(model, toy_tokenizers, on_bad_line=BadLine.fix)
    with caplog.at_level(logging.WARNING, logger="nmt"):
        assert fixer.check_line(raw, "in.en", 7) == "red \ufffd cat"
    assert "in.en:7" in caplog.text


def test_check_line_strips_a_carriage_return(model: Seq2Seq, toy_tokenizers: tuple) -> None:
    tr = translator(model, toy_tokenizers)
    assert tr.check_line(b"red cat\r", "x", 1) == "red cat"
    assert tr.check_line("caf\u00e9 \u2028".encode(), "x", 1) == "caf\u00e9 \u2028"


@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_stream_in_small_chunks_equals_one_chunk(model: Seq2Seq, toy_tokenizers: tuple, method: str) -> None:
    tr = translator(model, toy_tokenizers, method)
    raw = [line.encode() for line in LINES[:15]] + [b""] + [line.encode() for line in LINES[15:]]
    one = [t.text for t in tr.stream(iter(raw), "in", chunk_lines=10_000)]
    small = [t.text for t in tr.stream(iter(raw), "in", chunk_lines=3)]
    assert len(one) == len(raw) and small == one


def test_stream_reports_line_numbers_across_chunks(model: Seq2Seq, toy_tokenizers: tuple) -> None:
    tr = translator(model, toy_tokenizers, max_input_len=12)
    raw = [line.encode() for line in LINES[:9]] + [b" ".join([b"red cat"] * 20)]
    with pytest.raises(NmtError, match=r"in\.en:10:"):
        list(tr.stream(iter(raw), "in.en", chunk_lines=4))
    raw = [line.encode() for line in LINES[:6]] + [b"\xfe"]
    with pytest.raises(NmtError, match=r"in\.en:7:"):
        list(tr.stream(iter(raw), "in.en", chunk_lines=4))


def test_stream_counts_progress_for_every_line(model: Seq2Seq, toy_tokenizers: tuple) -> None:
    seen: list[int] = []
    raw = [b"", *[line.encode() for line in LINES[:7]], b""]
    list(translator(model, toy_tokenizers).stream(iter(raw), "in", chunk_lines=4, on_batch=seen.append))
    assert sum(seen) == len(raw)


def test_read_raw_lines_splits_on_newline_bytes_only() -> None:
    data = "a\u2028b\r\nc\x85d\n\ne".encode()
    assert list(read_raw_lines(io.BytesIO(data))) == ["a\u2028b\r".encode(), "c\x85d".encode(), b"", b"e"]


def test_attention_output_matches_the_pieces(model: Seq2Seq, toy_tokenizers: tuple) -> None:
    cfg = SearchConfig(method=SearchMethod.beam, beam_size=3, **LIMIT)
    tr = Translator(model, toy_tokenizers[0], toy_tokenizers[1], cfg, CPU, Options(with_attention=True))
    [short, long] = tr.translate_detailed([LINES[0], LINES[1] + " " + LINES[2]])
    for t in (short, long):
        assert t.src_pieces is not None and t.tgt_pieces is not None and t.attention is not None
        assert t.tgt_pieces[-1] == "</s>"
        assert len(t.attention) == len(t.tgt_pieces)
        assert all(len(row) == len(t.src_pieces) for row in t.attention)
        assert all(sum(row) == pytest.approx(1.0, abs=1e-3) for row in t.attention)


# --------------------------------------------------------------------------- unknown pieces


def unk_translator(
    toks: tuple[Tokenizer, Tokenizer], line: str, attend: int, **options: object
) -> Translator:
    """A scripted model that writes an unknown piece attending to source position ``attend``, then
    target piece 4, then ends; the scenario is keyed by the line's first source piece."""
    first = toks[0].encode([line])[0][0]

    def attention(prefix: tuple[int, ...], n: int) -> list[float]:
        return [1.0 if j == attend else 0.0 for j in range(n)] if prefix == () else [1.0 / n] * n

    scenario = Scenario({(): {UNK: 0.9, EOS: 0.1}, (UNK,): {4: 0.9, EOS: 0.1}}, attention=attention)
    cfg = SearchConfig(method=SearchMethod.beam, beam_size=2, **LIMIT)
    return Translator(FakeModel({first: scenario}), toks[0], toks[1], cfg, CPU, Options(**options))  # type: ignore[arg-type]


@pytest.mark.parametrize("attend", [0, 1, 2])
def test_an_unknown_piece_becomes_the_source_word_it_attends_to(toy_tokenizers: tuple, attend: int) -> None:
    line = "red cat big"
    tr = unk_translator(toy_tokenizers, line, attend)
    [t] = tr.translate_detailed([line])
    piece4 = toy_tokenizers[1].decode([[4]])[0]
    assert t.text == f"{line.split()[attend]} {piece4}".strip()
    assert t.unknown == 1 and t.unknown_left == 0 and "\u2047" not in t.text


def test_replace_unk_off_keeps_the_raw_output(toy_tokenizers: tuple) -> None:
    tr = unk_translator(toy_tokenizers, "red cat big", 1, replace_unk=False)
    [t] = tr.translate_detailed(["red cat big"])
    assert "\u2047" in t.text and t.unknown == t.unknown_left == 1


def test_the_copied_word_keeps_the_case_it_was_typed_in(toy_tokenizers: tuple) -> None:
    """With the text processing of a lowercasing model, the copy is the word as typed."""
    from nmt.config import DataConfig, Pretokenize, TextConfig
    from nmt.data.text import TextProcessor

    data = DataConfig(
        name="x", corpus="x", src_text=TextConfig(pretokenize=Pretokenize.moses, lowercase=True)
    )
    tr = unk_translator(toy_tokenizers, "red cat big", 1)
    tr.text = TextProcessor.from_data(data)
    [t] = tr.translate_detailed(["Red Cat big"])
    assert t.text.startswith("Cat")


def test_lines_that_differ_only_in_case_each_get_their_own_word(toy_tokenizers: tuple) -> None:
    """After lowercasing the three lines are one source, searched once; each copies its own word."""
    from nmt.config import DataConfig, Pretokenize, TextConfig
    from nmt.data.text import TextProcessor

    data = DataConfig(
        name="x", corpus="x", src_text=TextConfig(pretokenize=Pretokenize.moses, lowercase=True)
    )
    tr = unk_translator(toy_tokenizers, "red cat big", 1)
    tr.text = TextProcessor.from_data(data)
    lines = ["Red Cat big", "red cat big", "", "RED CAT BIG", "Red Cat big"]
    out = tr.translate_detailed(lines)
    assert [t.text.split()[0] if t.text else "" for t in out] == ["Cat", "cat", "", "CAT", "Cat"]
    assert out[0] is not out[4]  # the result of one line is never shared with another


def test_search_attention_and_teacher_forced_attention_agree(model: Seq2Seq, toy_tokenizers: tuple) -> None:
    from nmt.search.forced import force

    tr = translator(model, toy_tokenizers, "beam", beam_size=3)
    tr.options = Options(with_attention=True)
    ids = toy_tokenizers[0].encode(LINES[:6])
    hyps = decode_ids(model, ids, tr.cfg, CPU, with_attention=True)
    forced = force(model, ids, [h[0].tokens for h in hyps], CPU)
    for (lp, att), h in zip(forced, hyps):
        assert h[0].attention is not None
        torch.testing.assert_close(att, h[0].attention[:, : att.size(1)].float(), atol=1e-6, rtol=1e-5)
        assert float(lp.sum()) == pytest.approx(h[0].log_prob, abs=1e-9)


# --------------------------------------------------------------------------- per-call settings (nmt-serve)


@pytest.mark.parametrize("attend", [0, 2])
def test_the_copied_piece_is_marked_with_its_word(toy_tokenizers: tuple, attend: int) -> None:
    """``replaced`` lines up with ``tgt_pieces``: the word replace_unk put in place of the
    unknown piece, None elsewhere (the page marks that piece)."""
    line = "red cat big"
    tr = unk_translator(toy_tokenizers, line, attend)
    [plain] = tr.translate_detailed([line])
    [t] = tr.translate_detailed([line], with_attention=True)
    assert plain.replaced is None and plain.attention is None  # only when asked for
    assert t.text == plain.text
    assert t.tgt_pieces is not None and t.replaced is not None and len(t.replaced) == len(t.tgt_pieces)
    assert t.replaced[0] == line.split()[attend] and t.replaced[1:] == [None] * (len(t.tgt_pieces) - 1)


def test_a_call_may_ask_for_its_own_search(model: Seq2Seq, toy_tokenizers: tuple) -> None:
    """``search=`` replaces the translator's search for one call and leaves it unchanged after."""
    greedy = translator(model, toy_tokenizers, "greedy")
    beam_cfg = SearchConfig(method=SearchMethod.beam, beam_size=4, nbest=3, alpha=1.0, **LIMIT)
    beam = Translator(model, toy_tokenizers[0], toy_tokenizers[1], beam_cfg, CPU, Options(batch_size=64))
    want_beam = beam.translate_detailed(LINES[:6])
    want_greedy = greedy.translate_detailed(LINES[:6])
    got = greedy.translate_detailed(LINES[:6], search=beam_cfg, with_attention=True)
    assert [t.nbest for t in got] == [t.nbest for t in want_beam] and all(len(t.nbest) == 3 for t in got)
    assert all(t.attention is not None for t in got)
    assert [t.text for t in greedy.translate_detailed(LINES[:6])] == [t.text for t in want_greedy]


# --------------------------------------------------------------------------- terms (constraints)


def test_every_term_appears_and_lines_without_terms_are_unchanged(
    model: Seq2Seq, toy_tokenizers: tuple
) -> None:
    tr = translator(model, toy_tokenizers, "beam", beam_size=4)
    words = sorted({w for _, tgt in make_pairs(40, seed=3) for w in tgt.split()})
    terms = [[words[k % len(words)]] if k % 2 == 0 else [] for k in range(8)]
    terms[2] = [words[1], words[4]]
    plain = tr.translate_detailed(LINES[:8])
    got = tr.translate_detailed(LINES[:8], constraints=terms)
    for k, (t, want) in enumerate(zip(got, plain)):
        if terms[k]:
            assert all(term in t.text.split() for term in terms[k]), (terms[k], t.text)
        else:
            assert t.text == want.text and t.score == pytest.approx(want.score, abs=1e-9)  # other batch
    tsv = Translator(model, *toy_tokenizers, tr.cfg, CPU, Options(batch_size=64, constraints=True))
    lines = [line + "".join("\t" + term for term in ts) for line, ts in zip(LINES[:8], terms)]
    assert [t.text for t in tsv.translate_detailed(lines)] == [t.text for t in got]
    assert tsv.translate([LINES[0]]) == [plain[0].text]  # no tab: no terms


def test_a_term_the_model_cannot_write_is_an_error_naming_it(model: Seq2Seq, toy_tokenizers: tuple) -> None:
    tr = translator(model, toy_tokenizers, "beam", beam_size=2)
    with pytest.raises(NmtError, match="the term 'Ω' has characters the model cannot write"):
        tr.translate_detailed([LINES[0]], "in.txt", 7, constraints=[["Ω"]])
    with pytest.raises(NmtError, match="constraints need greedy or beam search"):
        translator(model, toy_tokenizers, "sample").translate_detailed([LINES[0]], constraints=[["x"]])
