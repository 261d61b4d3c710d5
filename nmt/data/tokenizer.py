"""SentencePiece subword models: train on text files, load from bytes, encode lines, decode ids.

Every model nmt trains reserves the same ids for the special symbols, so the model, the batcher
and the search can use the constants below without asking the tokenizer.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import sentencepiece as spm

from nmt import NmtError

log = logging.getLogger(__name__)

PAD, UNK, BOS, EOS = 0, 1, 2, 3

# every character str.splitlines() breaks a line at, mapped to a space
LINE_BREAKS = str.maketrans(dict.fromkeys("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029", " "))


def train_sentencepiece(
    files: list[Path],
    prefix: Path,
    *,
    vocab_size: int,
    model_type: str,
    character_coverage: float,
    input_sentence_size: int,
    byte_fallback: bool = False,
    split_digits: bool = False,
    normalization: str = "nmt_nfkc",
    seed_sentencepiece_size: int = 1_000_000,
) -> Path:
    """Train a SentencePiece model on ``files`` and write ``<prefix>.model``; returns its path.

    ``vocab_size`` is a soft limit (``hard_vocab_limit=False``) so tiny corpora (the toy recipe,
    tests) train too; on real corpora the vocabulary reaches the requested size.
    """
    try:
        spm.SentencePieceTrainer.train(
            input=[str(f) for f in files],
            model_prefix=str(prefix),
            vocab_size=vocab_size,
            model_type=model_type,
            character_coverage=character_coverage,
            input_sentence_size=input_sentence_size,
            shuffle_input_sentence=True,
            seed_sentencepiece_size=seed_sentencepiece_size,
            hard_vocab_limit=False,
            byte_fallback=byte_fallback,
            split_digits=split_digits,
            normalization_rule_name=normalization,
            pad_id=PAD,
            unk_id=UNK,
            bos_id=BOS,
            eos_id=EOS,
            num_threads=os.cpu_count() or 1,
            minloglevel=2,
        )
    except RuntimeError as e:  # e.g. "Vocabulary size too high" for a word model on a small corpus
        reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise NmtError(f"SentencePiece training on {', '.join(map(str, files))} failed: {reason}") from None
    return prefix.parent / f"{prefix.name}.model"


class Tokenizer:
    """A loaded SentencePiece model. Built from the serialized model so checkpoints carry it."""

    def __init__(self, model_proto: bytes) -> None:
        self.proto = model_proto
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
        for name, want in (("pad", PAD), ("unk", UNK), ("bos", BOS), ("eos", EOS)):
            got = getattr(self.sp, f"{name}_id")()
            if got != want:
                raise ValueError(f"SentencePiece model has {name}_id={got}, nmt needs {want}")

    @classmethod
    def load(cls, path: Path) -> Tokenizer:
        return cls(Path(path).read_bytes())

    def __len__(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, lines: list[str], threads: int = 0) -> list[list[int]]:
        """Lines to piece ids (no BOS/EOS added), on ``threads`` threads (0: one per core)."""
        return self.sp.encode(lines, out_type=int, num_threads=threads or os.cpu_count() or 1)

    def decode(self, ids: list[list[int]]) -> list[str]:
        """Piece ids to text; special symbols are dropped. No line break of any kind (\\n, \\r,
        U+2028, U+0085, form feed, ...) ever appears in the output, so one translation is one line
        for every reader, ``str.splitlines`` included."""
        return [s.translate(LINE_BREAKS) for s in self.sp.decode(ids)]

    def pieces(self, ids: list[int]) -> list[str]:
        return [self.sp.id_to_piece(i) for i in ids]

    def piece_id(self, piece: str) -> int:
        """The id of a piece of the vocabulary (UNK if it has none)."""
        return self.sp.piece_to_id(piece)

    def vocabulary(self) -> tuple[tuple[str, float, bool, bool], ...]:
        """Every piece with its score and kind, by id: what decides how text maps to ids. Two models
        trained alike on the same text have the same vocabulary even though their serialized files
        differ (they record the paths they were trained from)."""
        sp = self.sp
        return tuple(
            (sp.id_to_piece(i), round(sp.get_score(i), 5), sp.is_control(i), sp.is_byte(i))
            for i in range(len(self))
        )
