"""What nmt-prepare reads: the data group resolved into one ``Source`` per corpus and split.

One training corpus (``data.corpus``, ``data.train``) is the plain case; ``data.train_corpora``
names several, each with its own folder, text processing and filters (unset fields take the data
group's). Dev and test always come from ``data.corpus`` and are filtered only for empty pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nmt.config import CorpusConfig, DataConfig
from nmt.data.files import data_path, split_paths
from nmt.data.filters import Filters
from nmt.data.text import TextProcessor


@dataclass(frozen=True)
class Source:
    """One corpus's files for one split and how to prepare them (resolved from the data group)."""

    store: str  # folder name under the prepared data: train, train.<name>, dev, test
    corpus: str  # the name in logs and counts
    src: Path
    tgt: Path
    processor: TextProcessor | None  # None: already in the model's form
    filters: Filters
    limit: int  # pairs read (0: all)


def training_corpora(data: DataConfig) -> list[CorpusConfig]:
    """``data.train_corpora``, or the one corpus of the data group as the only one."""
    if data.train_corpora:
        return list(data.train_corpora)
    return [
        CorpusConfig(
            name=data.name, corpus=data.corpus, train=data.train, max_train_pairs=data.max_train_pairs
        )
    ]


def corpus_weights(data: DataConfig) -> dict[str, float]:
    """Each training corpus's sampling weight, by name."""
    return {c.name: c.weight for c in training_corpora(data)}


def sources(data: DataConfig) -> tuple[list[Source], list[Source]]:
    """The training sources (one per corpus) and the held-out ones (dev, test)."""

    def pick(own: object, default: object) -> object:
        return default if own is None else own

    def processor(processed: bool, src_text: object, tgt_text: object) -> TextProcessor | None:
        p = TextProcessor(src_text, tgt_text, data.src_lang, data.tgt_lang, data.segmented)  # type: ignore[arg-type]
        return None if processed or not (p.changes_source or p.changes_target) else p

    several = bool(data.train_corpora)
    train = []
    for c in training_corpora(data):
        base = data_path(data, c.corpus)
        filters = Filters(
            train=True,
            max_len=pick(c.max_len, data.max_len),  # type: ignore[arg-type]
            max_len_ratio=pick(c.max_len_ratio, data.max_len_ratio),  # type: ignore[arg-type]
            drop_copies=pick(c.drop_copies, data.drop_copies),  # type: ignore[arg-type]
            script=data.tgt_lang if pick(c.require_script, data.require_script) else None,
            dedup=pick(c.dedup, data.dedup),  # type: ignore[arg-type]
        )
        train.append(
            Source(
                f"train.{c.name}" if several else "train",
                c.name,
                base / f"{c.train}.{data.src_lang}",
                base / f"{c.train}.{data.tgt_lang}",
                processor(
                    pick(c.processed, data.processed),  # type: ignore[arg-type]
                    pick(c.src_text, data.src_text),
                    pick(c.tgt_text, data.tgt_text),
                ),
                filters,
                c.max_train_pairs,
            )
        )
    heldout = []
    for split in ("dev", "test"):
        sp, tp = split_paths(data, split)
        held = Filters(train=False, max_len=data.max_len, max_len_ratio=data.max_len_ratio)
        proc = processor(data.processed, data.src_text, data.tgt_text)
        heldout.append(Source(split, split, sp, tp, proc, held, 0))
    return train, heldout
