"""nmt.data.tokenizer: SentencePiece training with fixed special ids, encode/decode."""

from __future__ import annotations

from pathlib import Path

import pytest
import sentencepiece as spm

from nmt.data.tokenizer import BOS, EOS, PAD, UNK, Tokenizer, train_sentencepiece
from nmt.data.toy import make_pairs

LINES = [src for src, _ in make_pairs(300, seed=5)]


def train(tmp_path: Path, **kw: object) -> Tokenizer:
    text = tmp_path / "train.txt"
    text.write_text("".join(line + "\n" for line in LINES), encoding="utf-8")
    args: dict = dict(vocab_size=40, model_type="unigram", character_coverage=1.0, input_sentence_size=10_000)
    args.update(kw)
    model = train_sentencepiece([text], tmp_path / "spm", **args)
    assert model == tmp_path / "spm.model" and model.is_file()
    return Tokenizer.load(model)


@pytest.fixture(scope="module")
def tok(tmp_path_factory: pytest.TempPathFactory) -> Tokenizer:
    return train(tmp_path_factory.mktemp("spm"))


def test_special_ids_are_fixed(tok: Tokenizer) -> None:
    assert (PAD, UNK, BOS, EOS) == (0, 1, 2, 3)
    assert (tok.sp.pad_id(), tok.sp.unk_id(), tok.sp.bos_id(), tok.sp.eos_id()) == (PAD, UNK, BOS, EOS)
    assert tok.pieces([PAD, UNK, BOS, EOS]) == ["<pad>", "<unk>", "<s>", "</s>"]


@pytest.mark.parametrize("model_type", ["unigram", "bpe", "word"])
def test_every_model_type_gets_the_fixed_ids(tmp_path: Path, model_type: str) -> None:
    t = train(tmp_path, model_type=model_type)
    assert (t.sp.pad_id(), t.sp.unk_id(), t.sp.bos_id(), t.sp.eos_id()) == (PAD, UNK, BOS, EOS)
    assert t.decode(t.encode(LINES[:20])) == LINES[:20]


def test_vocab_size_is_a_soft_limit_on_tiny_corpora(tmp_path: Path) -> None:
    t = train(tmp_path, vocab_size=5000)  # far more than 300 short lines can fill
    assert 4 < len(t) < 5000


def test_encode_decode_round_trip(tok: Tokenizer) -> None:
    ids = tok.encode(LINES)
    assert len(ids) == len(LINES)
    assert all(isinstance(i, int) and i > EOS for seq in ids for i in seq)  # no specials added
    assert tok.decode(ids) == LINES


def test_empty_line_encodes_to_no_pieces(tok: Tokenizer) -> None:
    assert tok.encode(["", "   "]) == [[], []]
    assert tok.decode([[]]) == [""]


def test_unknown_characters_become_unk(tok: Tokenizer) -> None:
    [ids] = tok.encode(["red @@ cat"])
    assert UNK in ids


def test_decode_drops_special_symbols(tok: Tokenizer) -> None:
    [ids] = tok.encode(["red cat"])
    assert tok.decode([[BOS, *ids, EOS, PAD]]) == ["red cat"]


def test_decode_never_returns_a_newline(tmp_path: Path) -> None:
    # with byte fallback a piece can stand for the byte 0x0A (or 0x0D) itself
    t = train(tmp_path, vocab_size=320, byte_fallback=True)
    nl, cr = t.sp.piece_to_id("<0x0A>"), t.sp.piece_to_id("<0x0D>")
    [red] = t.encode(["red"])
    assert "\n" in t.sp.decode([*red, nl, *red])  # SentencePiece itself would emit it
    out = t.decode([[*red, nl, *red], [nl], [*red, cr, nl, *red]])
    assert all("\n" not in s and "\r" not in s for s in out)
    assert out[0] == "red  red"  # "red" "\n" " red": the newline became a space


def test_serialized_model_loads_identically(tok: Tokenizer) -> None:
    copy = Tokenizer(tok.proto)
    assert len(copy) == len(tok)
    assert copy.encode(LINES[:10]) == tok.encode(LINES[:10])


def test_model_with_other_special_ids_is_refused(tmp_path: Path) -> None:
    text = tmp_path / "t.txt"
    text.write_text("".join(line + "\n" for line in LINES), encoding="utf-8")
    # SentencePiece's own defaults: unk=0, bos=1, eos=2, no pad
    spm.SentencePieceTrainer.train(
        input=str(text), model_prefix=str(tmp_path / "other"), vocab_size=30, minloglevel=2
    )
    with pytest.raises(ValueError, match="pad_id"):
        Tokenizer.load(tmp_path / "other.model")
