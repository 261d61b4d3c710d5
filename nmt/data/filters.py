"""Which training pairs to keep: the filters of nmt-prepare, each counted under its own name.

In the order they apply (a pair is counted under the first filter that drops it):

- ``empty``: a side is blank (every split);
- ``copy``: the source equals the target after text processing (``data.drop_copies``; a crawl
  holds many untranslated pairs);
- ``script``: the target has no character of its language's script (``data.require_script``;
  for Japanese: no kana or kanji);
- ``no_pieces``: a side encodes to no SentencePiece piece (every split);
- ``too_long``: more pieces than ``max_len`` on a side;
- ``ratio``: the longer side has more than ``max_len_ratio`` times the pieces of the shorter;
- ``duplicate``: the same pair (after text processing) was kept before (``data.dedup``), decided
  by the main process over a 64-bit hash of each pair (``pair_hashes``), never its text.

Held-out splits (dev, test) are scored whole: only ``empty`` and ``no_pieces`` apply to them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np

from nmt import NmtError

# the characters that say a text is in a language's script (Unicode blocks)
SCRIPTS = {
    "ja": "\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f",  # kana, kanji
    "zh": "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff",  # Han
    "ko": "\uac00-\ud7af\u1100-\u11ff\u3130-\u318f",  # Hangul
    "ru": "\u0400-\u04ff",
    "uk": "\u0400-\u04ff",
    "el": "\u0370-\u03ff",
    "ar": "\u0600-\u06ff",
    "he": "\u0590-\u05ff",
    "th": "\u0e00-\u0e7f",
    "hi": "\u0900-\u097f",
}
LATIN = "A-Za-z\u00c0-\u024f"
LATIN_LANGS = {"en", "de", "fr", "es", "it", "pt", "nl", "sv", "da", "no", "fi", "pl", "cs", "tr", "id", "vi"}

TRAIN_FILTERS = ("empty", "copy", "script", "no_pieces", "too_long", "ratio", "duplicate")
HELDOUT_FILTERS = ("empty", "no_pieces")


def script_pattern(lang: str) -> re.Pattern:
    """A regex that finds a character of ``lang``'s script (an NmtError for a language without one here)."""
    chars = SCRIPTS.get(lang) or (LATIN if lang in LATIN_LANGS else None)
    if chars is None:
        known = ", ".join(sorted([*SCRIPTS, *LATIN_LANGS]))
        raise NmtError(f"data.require_script: no script known for language {lang!r} (known: {known})")
    return re.compile(f"[{chars}]")


@dataclass(frozen=True)
class Filters:
    """The settings of one corpus's filters (resolved from the data group and the corpus's own)."""

    train: bool  # the length filters and the cleaning filters apply
    max_len: int
    max_len_ratio: float
    drop_copies: bool = False
    script: str | None = None  # the target language whose script is required, or None
    dedup: bool = False

    def names(self) -> tuple[str, ...]:
        """The filters that apply, in order."""
        if not self.train:
            return HELDOUT_FILTERS
        off = {"copy": not self.drop_copies, "script": self.script is None, "duplicate": not self.dedup}
        return tuple(name for name in TRAIN_FILTERS if not off.get(name, False))

    def text_drops(self, src: list[str], tgt: list[str]) -> list[str | None]:
        """Per pair of processed text: the first text filter that drops it, or None."""
        pattern = script_pattern(self.script) if self.script else None
        out: list[str | None] = []
        for s, t in zip(src, tgt):
            if not s.strip() or not t.strip():
                out.append("empty")
            elif self.train and self.drop_copies and s.strip() == t.strip():
                out.append("copy")
            elif pattern is not None and self.train and pattern.search(t) is None:
                out.append("script")
            else:
                out.append(None)
        return out

    def length_drops(self, src_lens: np.ndarray, tgt_lens: np.ndarray) -> np.ndarray:
        """Per pair of piece counts: 0 kept, else 1 + the index into ("no_pieces", "too_long",
        "ratio") of the filter that drops it."""
        out = np.zeros(len(src_lens), dtype=np.int8)
        if not len(src_lens):
            return out
        shorter, longer = np.minimum(src_lens, tgt_lens), np.maximum(src_lens, tgt_lens)
        if self.train:
            out[longer > self.max_len_ratio * np.maximum(shorter, 1)] = 3
            out[longer > self.max_len] = 2
        out[shorter == 0] = 1
        return out


def pair_hashes(src: list[str], tgt: list[str]) -> np.ndarray:
    """A 64-bit hash of each (source, target) pair (for ``dedup``; collisions between 21 million
    distinct pairs: about one chance in 80,000)."""
    return np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(f"{s}\t{t}".encode(), digest_size=8).digest(), "little")
            for s, t in zip(src, tgt)
        ),
        dtype=np.uint64,
        count=len(src),
    )


class SeenPairs:
    """The hashes of the pairs kept so far, in bounded memory (8 bytes a pair): a sorted array
    plus a small buffer merged into it now and then."""

    def __init__(self) -> None:
        self.sorted = np.zeros(0, dtype=np.uint64)
        self.buffer: list[np.ndarray] = []
        self.buffered = 0

    def first_seen(self, hashes: np.ndarray) -> np.ndarray:
        """A mask of the hashes not seen before (in this call: the first of equal ones); records them."""
        _, first = np.unique(hashes, return_index=True)
        new = np.zeros(len(hashes), dtype=bool)
        new[first] = True
        new &= ~self._contains(hashes)
        self.buffer.append(hashes[new])
        self.buffered += int(new.sum())
        if self.buffered > max(1 << 18, len(self.sorted) // 8):
            self._merge()
        return new

    def add(self, hashes: np.ndarray) -> None:
        """Record hashes already known to be kept (a reused part of the cache)."""
        self.buffer.append(np.asarray(hashes, dtype=np.uint64))
        self.buffered += len(hashes)
        self._merge()

    def _contains(self, hashes: np.ndarray) -> np.ndarray:
        found = np.zeros(len(hashes), dtype=bool)
        if len(self.sorted):
            pos = np.searchsorted(self.sorted, hashes).clip(max=len(self.sorted) - 1)
            found = self.sorted[pos] == hashes
        for b in self.buffer:
            found |= np.isin(hashes, b)
        return found

    def _merge(self) -> None:
        self.sorted = np.unique(np.concatenate([self.sorted, *self.buffer]))
        self.buffer, self.buffered = [], 0
