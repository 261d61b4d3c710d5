"""Text as people type it in, the corpus's form to the model; the model's output back to plain text.

A corpus has a form: small_parallel_enja's English is Moses-tokenised and lowercased ("he didn 't
care ."), its Japanese is segmented into words with spaces ("彼 は 水泳 が ..."). A model trained
on it only understands that form, and writes that form. ``TextProcessor`` does what the data
config (``data.src_text``, ``data.tgt_text``, ``data.segmented``) says, stored in every checkpoint,
so nmt-translate, nmt-evaluate and the Python API all read and write plain text:

- source: Unicode normalisation (NFKC), Moses tokenisation (sacremoses), lowercasing, in the order
  the corpora were made (tokenise, then lowercase);
- target: segmented Japanese joined back (spaces kept only between two Latin letters or digits),
  Moses-tokenised text detokenised; ``keep_segmentation`` gives the model's own form.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
import unicodedata
from dataclasses import dataclass
from functools import cached_property

from nmt.config import DataConfig, Normalize, Pretokenize, TextConfig


def is_word_char(c: str) -> bool:
    """ASCII letters and digits (and Latin letters with accents): the characters a space is kept between."""
    return c.isascii() and c.isalnum() or "LATIN" in unicodedata.name(c, "")


def join_segmented(text: str) -> str:
    """Word-segmented text to plain text: '１０ 時 前 に 戻 る' -> '１０時前に戻る', 'New York に' ->
    'New Yorkに'. A space survives only between two word characters of Latin script."""
    words = text.split()
    if not words:
        return ""
    out = [words[0]]
    for w in words[1:]:
        if is_word_char(out[-1][-1]) and is_word_char(w[0]):
            out.append(" ")
        out.append(w)
    return "".join(out)


def prefetch_moses() -> threading.Thread:
    """Start importing sacremoses in a background thread, for a tool about to import torch.

    Importing sacremoses takes about 0.2 s (its tokeniser compiles ~100 regular expressions over
    Unicode character classes when its class is defined). Much of ``import torch`` leaves the
    interpreter free (reading and mapping its libraries), so the two partly overlap: a one-line
    translation with a Moses model ends ~0.05 s sooner (docs/benchmarks.md, 2026-12-01). The
    first use waits for the import to finish (Python's import lock); an import that fails here
    fails again there, where it is reported.
    """
    import numpy  # noqa: F401 - both imports need it: import it once, here, not from two threads at once

    def load() -> None:
        with contextlib.suppress(Exception):  # reported by the import at first use
            importlib.import_module("sacremoses")

    thread = threading.Thread(target=load, name="nmt-import-sacremoses", daemon=True)
    thread.start()
    return thread


@dataclass
class Prepared:
    """A source line in the model's form, and its words as typed (cased; after tokenisation)."""

    text: str
    words: list[str]


class TextProcessor:
    """The text processing of one model (language pair), built from its data config."""

    def __init__(
        self, src: TextConfig, tgt: TextConfig, src_lang: str, tgt_lang: str, segmented: bool
    ) -> None:
        self.src, self.tgt, self.src_lang, self.tgt_lang, self.segmented = (
            src,
            tgt,
            src_lang,
            tgt_lang,
            segmented,
        )

    @classmethod
    def from_data(cls, d: DataConfig) -> TextProcessor:
        return cls(d.src_text, d.tgt_text, d.src_lang, d.tgt_lang, d.segmented)

    def needs_moses(self, processed_input: bool = False, keep_segmentation: bool = False) -> bool:
        """Whether translating will use sacremoses (imported at first use): Moses tokenisation of
        typed input, or Moses detokenisation of the output."""
        return (self.src.pretokenize == Pretokenize.moses and not processed_input) or (
            self.tgt.pretokenize == Pretokenize.moses and not keep_segmentation
        )

    @property
    def changes_source(self) -> bool:
        s = self.src
        return s.normalize != Normalize.none or s.pretokenize != Pretokenize.none or s.lowercase

    # sacremoses is imported only by models that use it (start-up time of the CLIs)
    @cached_property
    def _src_tokenizer(self):  # noqa: ANN202
        from sacremoses import MosesTokenizer

        return MosesTokenizer(lang=self.src_lang)

    @cached_property
    def _tgt_tokenizer(self):  # noqa: ANN202
        from sacremoses import MosesTokenizer

        return MosesTokenizer(lang=self.tgt_lang)

    @cached_property
    def _tgt_detokenizer(self):  # noqa: ANN202
        from sacremoses import MosesDetokenizer

        return MosesDetokenizer(lang=self.tgt_lang)

    def _prepare(self, line: str, cfg: TextConfig, tokenizer) -> Prepared:  # noqa: ANN001
        if cfg.normalize == Normalize.nfkc:
            line = unicodedata.normalize("NFKC", line)
        if cfg.pretokenize == Pretokenize.moses:
            words = tokenizer.tokenize(line, escape=False, aggressive_dash_splits=False)
        else:
            words = line.split()
        text = " ".join(words) if cfg.pretokenize == Pretokenize.moses else line
        if cfg.lowercase:
            text = text.lower()
        return Prepared(text, words)

    def source(self, line: str) -> Prepared:
        """A typed source line to the model's input form."""
        if not self.changes_source:
            return Prepared(line, line.split())
        return self._prepare(
            line, self.src, self._src_tokenizer if self.src.pretokenize == Pretokenize.moses else None
        )

    @property
    def changes_target(self) -> bool:
        t = self.tgt
        return t.normalize != Normalize.none or t.pretokenize != Pretokenize.none or t.lowercase

    def target_corpus(self, line: str) -> str:
        """A raw target line of a corpus to the model's target form (nmt-prepare of a raw corpus)."""
        tgt = self.tgt
        if not self.changes_target:
            return line
        return self._prepare(
            line, tgt, self._tgt_tokenizer if tgt.pretokenize == Pretokenize.moses else None
        ).text

    def target(self, text: str, keep_segmentation: bool = False) -> str:
        """The model's output to plain text (or as it is, with ``keep_segmentation``)."""
        if keep_segmentation:
            return text
        if self.tgt.pretokenize == Pretokenize.moses:
            text = self._tgt_detokenizer.detokenize(text.split())
        if self.segmented:
            text = join_segmented(text)
        return text
