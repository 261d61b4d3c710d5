"""Aligned corpus files in, SentencePiece models and memory-mapped pairs out (what nmt-prepare does).

The pipeline, one stage a module:

1. ``nmt.data.files`` finds each corpus's files and cuts them into chunks of lines (a byte scan;
   unequal line counts stop here, naming both files).
2. SentencePiece is trained on a sample of the training pairs (all of them up to
   ``tokenizer.input_sentence_size``), brought to the model's text form by worker processes
   (``nmt.data.encode``); the training runs in a process of its own, so its memory is its own.
3. Every split of every corpus goes through the workers again (text processing, the filters of
   ``nmt.data.filters``, SentencePiece) and is written in parts (``nmt.data.store``), each
   committed by a rename: a killed prepare leaves finished parts that the next run reuses, and
   never a part that looks finished and is not.
4. ``manifest.json``, written last, names what a complete prepare made, with the counts of every
   corpus and split; ``load_prepared`` opens it all memory-mapped.

Memory stays flat whatever the corpus size: the main process holds a few chunks in flight and one
part's lengths (with ``data.dedup``, 8 bytes a kept pair more).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nmt import NmtError
from nmt.config import DataConfig, TokenizerConfig
from nmt.data.encode import Encoded, LineProgress, Worker, available_cores, run
from nmt.data.files import Chunk, file_digest, parallel_chunks
from nmt.data.filters import SeenPairs
from nmt.data.sources import Source, corpus_weights, sources
from nmt.data.store import EncodedSplit, Pairs, PartWriter, open_store, read_json, read_meta, write_json
from nmt.data.text import TextProcessor
from nmt.data.tokenizer import Tokenizer
from nmt.data.vocab import SAMPLE_SEED, tokenizers

log = logging.getLogger(__name__)

__all__ = ["EncodedSplit", "Prepared", "corpus_weights", "load_prepared", "prepare"]

CACHE_FORMAT = 2
LINES_PER_CHUNK = 20_000  # a worker's task
LINES_PER_PART = 2_000_000  # committed on its own


@dataclass
class Prepared:
    """What nmt-prepare leaves in ``<run_dir>/data``: both tokenizers, the splits (``train``: every
    training corpus one after another) and each training corpus on its own, by name."""

    src_tok: Tokenizer
    tgt_tok: Tokenizer
    splits: dict[str, Pairs]
    corpora: dict[str, Pairs]
    manifest: dict


# ----------------------------------------------------------------------------- cache keys


def _digest(value: object) -> str:
    return hashlib.sha1(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


class Digests:
    """File digests, reused while a file's size, times and inode are unchanged (as git does), so
    checking a cache of a 21-million-line corpus does not read 5 GB every time."""

    def __init__(self, known: dict) -> None:
        self.known, self.now = known, {}

    def __call__(self, path: Path, what: str) -> dict:
        if not path.is_file():
            raise NmtError(f"{path}: file not found ({what})")
        st = path.stat()
        stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        old = self.known.get(str(path))
        sha1 = old["sha1"] if old and old.get("stamp") == stamp else file_digest(path)
        self.now[str(path)] = {"stamp": stamp, "sha1": sha1}
        return {"bytes": st.st_size, "sha1": sha1}


def _source_key(s: Source, digests: Digests, what: str) -> dict:
    p = s.processor
    return {
        "files": [digests(s.src, what), digests(s.tgt, what)],
        "text": None if p is None else _text_key(p),
        "limit": s.limit,
        "filters": dataclasses.asdict(s.filters),
    }


def _text_key(p: TextProcessor) -> dict:
    return {
        side: {k: getattr(v, "value", v) for k, v in dataclasses.asdict(cfg).items()}
        for side, cfg in (("src", p.src), ("tgt", p.tgt))
    }


# ----------------------------------------------------------------------------- prepare


def prepare(
    data: DataConfig, tok: TokenizerConfig, out_dir: Path, force: bool = False, workers: int | None = None
) -> Prepared:
    """Validate the corpora, train SentencePiece, encode all splits; reuse what an earlier run
    with the same inputs and settings finished. ``workers``: processes (default data.workers,
    0: the cores available)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    workers = workers or data.workers or available_cores()
    manifest_path = out_dir / "manifest.json"
    old = read_json(manifest_path)
    digests = Digests(old.get("digests", {}))
    train, heldout = sources(data)
    what = {s.store: f"data.corpus={data.corpus}, data.{s.store}={getattr(data, s.store)}" for s in heldout}
    for s in train:
        what[s.store] = f"training corpus {s.corpus}"
    keys = {s.store: _source_key(s, digests, what[s.store]) for s in [*train, *heldout]}
    spm_key = {
        "format": CACHE_FORMAT,
        "tokenizer": {k: getattr(v, "value", v) for k, v in dataclasses.asdict(tok).items()},
        "langs": [data.src_lang, data.tgt_lang],
        "sample": [keys[s.store] for s in train],
        "seed": SAMPLE_SEED,
    }
    key = {"format": CACHE_FORMAT, "spm": spm_key, "stores": keys}
    if not force and old.get("key") == key:
        try:
            prepared = load_prepared(out_dir)
            log.info("prepared data in %s is up to date (inputs unchanged): reusing it", out_dir)
            _write_manifest(manifest_path, {**old, "digests": digests.now})
            return prepared
        except NmtError as e:
            log.warning("%s; preparing again", e)
    elif old:
        log.info("inputs or settings changed since the last prepare: preparing again")
    manifest_path.unlink(missing_ok=True)  # from here on the folder holds no complete prepare
    if force:
        _remove_stores(out_dir, keep=set())

    chunked = {s.store: parallel_chunks(s.src, s.tgt, LINES_PER_CHUNK, s.limit) for s in [*train, *heldout]}
    spm_ref = _digest(spm_key)
    src_tok, tgt_tok, spm_stats = tokenizers(train, chunked, data, tok, spm_key, out_dir, workers)
    models = (src_tok.proto, tgt_tok.proto)
    counts: dict[str, dict] = {}
    for s in [*train, *heldout]:
        store_key = {**keys[s.store], "spm": spm_ref}
        counts[s.store] = _encode_source(
            s, chunked[s.store][0], store_key, models, max(len(src_tok), len(tgt_tok)), out_dir, workers
        )
        _log_counts(s, counts[s.store])
    _remove_stores(out_dir, keep={s.store for s in [*train, *heldout]})
    for stale in ("train.npz", "dev.npz", "test.npz"):  # the format before memory-mapped parts
        (out_dir / stale).unlink(missing_ok=True)
    manifest = {
        "key": key,
        "counts": {
            "train": _sum_counts([counts[s.store] for s in train]),
            "dev": counts["dev"],
            "test": counts["test"],
        },
        "corpora": {s.corpus: {"store": s.store, **counts[s.store]} for s in train},
        "src_vocab": len(src_tok),
        "tgt_vocab": len(tgt_tok),
        "sentencepiece": spm_stats,
        "digests": digests.now,
    }
    _write_manifest(manifest_path, manifest)
    return load_prepared(out_dir)


def _write_manifest(path: Path, manifest: dict) -> None:
    try:
        write_json(path, manifest)
    except OSError as e:
        raise NmtError(f"{path}: cannot write: {e.strerror or e}") from None


def _remove_stores(out_dir: Path, keep: set[str]) -> None:
    """Prepared folders of corpora no longer asked for, and what killed writers left."""
    for p in out_dir.iterdir():
        name = p.name.removesuffix(".partial")
        ours = name in ("dev", "test", "train") or name.startswith("train.")
        if p.is_dir() and ours and (p.name.endswith(".partial") or name not in keep):
            shutil.rmtree(p, ignore_errors=True)


def _log_counts(s: Source, c: dict) -> None:
    log.info(
        "%s: %d pairs read from %s, kept %d (dropped %s); %d source and %d target pieces",
        s.corpus if s.store.startswith("train") else s.store,
        c["read"],
        s.src.with_suffix(""),
        c["kept"],
        ", ".join(f"{k} {v}" for k, v in c["dropped"].items()) or "none",
        c["src_pieces"],
        c["tgt_pieces"],
    )


# ----------------------------------------------------------------------------- encoding


@dataclass
class Counts:
    """What happened to one corpus's pairs: read, kept, dropped by which filter, pieces kept."""

    dropped: dict[str, int]
    read: int = 0
    kept: int = 0
    src_pieces: int = 0
    tgt_pieces: int = 0

    @classmethod
    def of(cls, counts: dict) -> Counts:
        return cls(
            dict(counts["dropped"]),
            counts["read"],
            counts["kept"],
            counts["src_pieces"],
            counts["tgt_pieces"],
        )

    def add(self, other: Counts) -> Counts:
        for k, v in other.dropped.items():
            self.dropped[k] = self.dropped.get(k, 0) + v
        self.read, self.kept = self.read + other.read, self.kept + other.kept
        self.src_pieces, self.tgt_pieces = (
            self.src_pieces + other.src_pieces,
            self.tgt_pieces + other.tgt_pieces,
        )
        return self

    def add_chunk(self, enc: Encoded, duplicates: int) -> None:
        self.add(Counts(enc.dropped, enc.read, len(enc.lines), int(enc.src[1].sum()), int(enc.tgt[1].sum())))
        if duplicates:
            self.dropped["duplicate"] += duplicates

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _sum_counts(counts: list[dict], names: tuple[str, ...] = ()) -> dict:
    total = Counts(dict.fromkeys(names, 0))
    for c in counts:
        total.add(Counts.of(c))
    return total.as_dict()


def _encode_source(
    s: Source,
    chunks: list[Chunk],
    key: dict,
    models: tuple[bytes, bytes],
    vocab: int,
    out_dir: Path,
    workers: int,
) -> dict:
    """One corpus's split encoded into ``out_dir/<store>``, part by part; the counts. Parts are
    committed inside ``<store>.partial``, which becomes ``<store>`` when the last one is done; an
    interrupted run's finished parts (the leading ones whose key matches) are reused."""
    folder, store_key = out_dir / s.store, _digest(key)
    committed = _store_meta(folder)
    if committed.get("key") == store_key:
        return committed["counts"]
    tmp = folder.with_name(folder.name + ".partial")
    if folder.is_dir() and not tmp.exists():
        shutil.rmtree(folder)
    tmp.mkdir(parents=True, exist_ok=True)
    per_part = max(1, LINES_PER_PART // LINES_PER_CHUNK)
    parts = [chunks[k : k + per_part] for k in range(0, len(chunks), per_part)]
    names = [f"part-{k:05d}" for k in range(len(parts))]
    pkeys = [
        _digest({"store": store_key, "first": p[0].first, "lines": sum(c.count for c in p)}) for p in parts
    ]
    seen = SeenPairs() if s.filters.dedup else None
    done: list[dict] = []
    for k in range(len(parts)):
        meta = _part_meta(tmp / names[k])
        if meta is None or meta.get("key") != pkeys[k]:
            break
        done.append(meta["counts"])
        if seen is not None:
            seen.add(np.fromfile(tmp / names[k] / "hashes", dtype=np.uint64))
    if done:
        log.info("%s: reusing %d finished part(s) of an interrupted prepare", s.store, len(done))
    todo = range(len(done), len(parts))
    progress = LineProgress(sum(c.count for k in todo for c in parts[k]), f"{s.corpus}: encoding")
    results = run(
        Worker(s.processor, s.filters, models), "encode", [(c,) for k in todo for c in parts[k]], workers
    )
    for k in todo:
        writer = PartWriter(tmp / names[k], vocab, pkeys[k], with_hashes=seen is not None)
        counts = Counts(dict.fromkeys(s.filters.names(), 0))
        for _ in parts[k]:
            enc = next(results)
            duplicates = 0
            if seen is not None:
                keep = seen.first_seen(enc.hashes)
                duplicates = int(len(keep) - keep.sum())
                enc = _select(enc, keep)
            counts.add_chunk(enc, duplicates)
            writer.append(enc.src, enc.tgt, enc.lines, enc.hashes)
            progress.update(enc.read)
        writer.commit(counts.as_dict())
        done.append(counts.as_dict())
    seconds = progress.close()
    total = _sum_counts(done, s.filters.names())
    if total["read"] and len(todo):
        rate = f"{total['read'] / max(seconds, 1e-9):,.0f}"
        log.info("%s: %s pairs encoded in %.0f s (%s pairs/s)", s.store, f"{total['read']:,}", seconds, rate)
    write_json(tmp / "meta.json", {"format": 1, "key": store_key, "parts": names, "counts": total})
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return total


def _store_meta(folder: Path) -> dict:
    """A committed store's meta.json if all its parts open, else {}."""
    try:
        open_store(folder)
        return read_meta(folder)
    except NmtError:
        return {}


def _part_meta(folder: Path) -> dict | None:
    try:
        return read_meta(folder)
    except NmtError:
        return None


def _select(enc: Encoded, keep: np.ndarray) -> Encoded:
    """The pairs of ``enc`` where ``keep`` is True."""

    def side(ids: np.ndarray, lens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mask = np.repeat(keep, lens)
        return ids[mask], lens[keep]

    return dataclasses.replace(
        enc,
        src=side(*enc.src),
        tgt=side(*enc.tgt),
        lines=enc.lines[keep],
        hashes=None if enc.hashes is None else enc.hashes[keep],
    )


# ----------------------------------------------------------------------------- loading


def load_prepared(out_dir: Path) -> Prepared:
    """Open what ``prepare`` made (memory-mapped: nothing is read until it is used)."""
    manifest_path = out_dir / "manifest.json"
    if not manifest_path.is_file():
        raise NmtError(f"{out_dir}: no prepared data (run nmt-prepare with the same settings first)")
    manifest = read_json(manifest_path)
    try:
        corpora = {name: open_store(out_dir / c["store"]) for name, c in manifest["corpora"].items()}
        splits = {
            "train": corpora[next(iter(corpora))] if len(corpora) == 1 else Pairs(list(corpora.values())),
            "dev": open_store(out_dir / "dev"),
            "test": open_store(out_dir / "test"),
        }
        src_tok, tgt_tok = (
            Tokenizer.load(out_dir / "spm.src.model"),
            Tokenizer.load(out_dir / "spm.tgt.model"),
        )
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise NmtError(
            f"{out_dir}: prepared data is damaged ({type(e).__name__}: {str(e).splitlines()[0][:120]})"
        ) from None
    return Prepared(src_tok, tgt_tok, splits, corpora, manifest)
