"""Aligned corpus files in, cached integer arrays out (what ``nmt-prepare`` does).

The files are found and read by ``nmt.data.files``, which stops at the first problem with a
message naming the file and line (missing file, invalid UTF-8, unequal line counts). Training pairs that are empty, too long
or too unbalanced are dropped and counted. SentencePiece is trained on the kept training pairs,
every split is encoded once into flat int32 arrays under ``<run_dir>/data``, and a manifest of
the inputs lets a rerun with unchanged inputs reuse the cache.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nmt import NmtError
from nmt.checks import character_coverage
from nmt.config import DataConfig, TokenizerConfig
from nmt.data.files import file_digest, read_parallel, split_paths
from nmt.data.text import TextProcessor
from nmt.data.tokenizer import Tokenizer, train_sentencepiece

log = logging.getLogger(__name__)

CACHE_FORMAT = 1


# ----------------------------------------------------------------------------- arrays


@dataclass
class EncodedSplit:
    """Sentences of one split as flat int32 arrays: sentence i is ids[offsets[i]:offsets[i+1]].

    ``lines`` holds each pair's 0-based line number in the original files (for references).
    """

    src_ids: np.ndarray
    src_offsets: np.ndarray
    tgt_ids: np.ndarray
    tgt_offsets: np.ndarray
    lines: np.ndarray

    def __len__(self) -> int:
        return len(self.lines)

    @property
    def src_lens(self) -> np.ndarray:
        return np.diff(self.src_offsets)

    @property
    def tgt_lens(self) -> np.ndarray:
        return np.diff(self.tgt_offsets)

    def src(self, i: int) -> np.ndarray:
        return self.src_ids[self.src_offsets[i] : self.src_offsets[i + 1]]

    def tgt(self, i: int) -> np.ndarray:
        return self.tgt_ids[self.tgt_offsets[i] : self.tgt_offsets[i + 1]]

    @classmethod
    def from_lists(cls, src: list[list[int]], tgt: list[list[int]], lines: list[int]) -> EncodedSplit:
        def flat(seqs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
            offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
            np.cumsum([len(s) for s in seqs], out=offsets[1:])
            ids = np.fromiter((t for s in seqs for t in s), dtype=np.int32, count=int(offsets[-1]))
            return ids, offsets

        si, so = flat(src)
        ti, to = flat(tgt)
        return cls(si, so, ti, to, np.asarray(lines, dtype=np.int64))

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **dataclasses.asdict(self))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> EncodedSplit:
        with np.load(path) as z:
            return cls(**{f.name: z[f.name] for f in dataclasses.fields(cls)})


@dataclass
class Prepared:
    """What nmt-prepare leaves in ``<run_dir>/data``: both tokenizers and the encoded splits."""

    src_tok: Tokenizer
    tgt_tok: Tokenizer
    splits: dict[str, EncodedSplit]
    manifest: dict


# ----------------------------------------------------------------------------- prepare


def _cache_key(data: DataConfig, tok: TokenizerConfig) -> dict:
    files = {}
    for split in ("train", "dev", "test"):
        for p in split_paths(data, split):
            if not p.is_file():
                raise NmtError(
                    f"{p}: file not found (data.corpus={data.corpus}, data.{split}={getattr(data, split)})"
                )
            files[str(p)] = {"bytes": p.stat().st_size, "sha1": file_digest(p)}
    keep = ("src_lang", "tgt_lang", "max_len", "max_len_ratio", "max_train_pairs", "processed")
    text = {side: {k: getattr(v, "value", v) for k, v in dataclasses.asdict(getattr(data, side)).items()}
            for side in ("src_text", "tgt_text")}  # fmt: skip
    return {
        "format": CACHE_FORMAT,
        "files": files,
        "data": {**{k: getattr(data, k) for k in keep}, **text},
        "tokenizer": {k: (v.value if hasattr(v, "value") else v) for k, v in dataclasses.asdict(tok).items()},
    }


def _filter(
    src: list[list[int]], tgt: list[list[int]], data: DataConfig, train: bool
) -> tuple[list[int], dict]:
    """Indices of the pairs to keep; no pieces on a side drops a pair in every split, length and
    length ratio only in the training split (dev and test are scored whole)."""
    kept, dropped = [], {"no_pieces": 0, "too_long": 0, "ratio": 0} if train else {"no_pieces": 0}
    for i, (s, t) in enumerate(zip(src, tgt)):
        ls, lt = len(s), len(t)
        if ls == 0 or lt == 0:
            dropped["no_pieces"] += 1
        elif not train:
            kept.append(i)
        elif ls > data.max_len or lt > data.max_len:
            dropped["too_long"] += 1
        elif max(ls, lt) > data.max_len_ratio * max(1, min(ls, lt)):
            dropped["ratio"] += 1
        else:
            kept.append(i)
    return kept, dropped


def prepare(data: DataConfig, tok: TokenizerConfig, out_dir: Path, force: bool = False) -> Prepared:
    """Validate the corpus, train SentencePiece, encode all splits; reuse the cache when possible."""
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / "manifest.json"
    key = _cache_key(data, tok)
    if not force and manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text())
        except ValueError:
            manifest = {}
        if manifest.get("key") == key:
            try:
                prepared = load_prepared(out_dir)
                log.info("prepared data in %s is up to date (inputs unchanged): reusing it", out_dir)
                return prepared
            except NmtError as e:
                log.warning("%s; preparing again", e)
        else:
            log.info("inputs or settings changed since the last prepare: preparing again")

    raw = {}
    processor = TextProcessor.from_data(data)
    if not data.processed and (processor.changes_source or processor.changes_target):
        log.info("bringing the corpus to the form data.src_text / data.tgt_text describe")
    for split in ("train", "dev", "test"):
        sp, tp = split_paths(data, split)
        src, tgt = read_parallel(sp, tp)
        if split == "train" and data.max_train_pairs > 0:
            src, tgt = src[: data.max_train_pairs], tgt[: data.max_train_pairs]
        if not data.processed and (processor.changes_source or processor.changes_target):
            src = [processor.source(line).text for line in src]
            tgt = [processor.target_corpus(line) for line in tgt]
        keep = [i for i, (s, t) in enumerate(zip(src, tgt)) if s.strip() and t.strip()]
        raw[split] = (src, tgt, keep)
        log.info(
            "%s: %d pairs read from %s/%s, %d empty pairs dropped",
            split,
            len(src),
            sp.parent,
            sp.stem,
            len(src) - len(keep),
        )

    if not raw["train"][2]:
        sp, tp = split_paths(data, "train")
        raise NmtError(f"{sp} and {tp}: no training pair has text on both sides")
    src_tok, tgt_tok = _train_tokenizers(raw["train"], data, tok, out_dir)
    counts: dict[str, dict] = {}
    for split, (src, tgt, keep) in raw.items():
        s_ids = src_tok.encode([src[i] for i in keep])
        t_ids = tgt_tok.encode([tgt[i] for i in keep])
        idx, dropped = _filter(s_ids, t_ids, data, train=split == "train")
        dropped = {"empty": len(src) - len(keep), **dropped}
        s_ids, t_ids, keep = [s_ids[i] for i in idx], [t_ids[i] for i in idx], [keep[i] for i in idx]
        enc = EncodedSplit.from_lists(s_ids, t_ids, keep)
        enc.save(out_dir / f"{split}.npz")
        counts[split] = {
            "read": len(src),
            "kept": len(enc),
            "dropped": dropped,
            "src_pieces": int(enc.src_lens.sum()),
            "tgt_pieces": int(enc.tgt_lens.sum()),
        }
        log.info(
            "%s: kept %d pairs (dropped %s); %d source and %d target pieces",
            split,
            len(enc),
            ", ".join(f"{k} {v}" for k, v in dropped.items()),
            counts[split]["src_pieces"],
            counts[split]["tgt_pieces"],
        )
    manifest = {"key": key, "counts": counts, "src_vocab": len(src_tok), "tgt_vocab": len(tgt_tok)}
    tmp = manifest_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, manifest_path)
    return load_prepared(out_dir)


def _train_tokenizers(
    train: tuple, data: DataConfig, tok: TokenizerConfig, out_dir: Path
) -> tuple[Tokenizer, Tokenizer]:
    src, tgt, keep = train
    text = {}
    for lang, lines in ((data.src_lang, src), (data.tgt_lang, tgt)):
        text[lang] = out_dir / f"spm_input.{lang}.txt"
        text[lang].write_text("".join(lines[i] + "\n" for i in keep), encoding="utf-8")
    common = dict(
        model_type=tok.model_type.value,
        input_sentence_size=tok.input_sentence_size,
        byte_fallback=tok.byte_fallback,
        split_digits=tok.split_digits,
        normalization=tok.normalization,
    )
    try:
        if tok.joint:
            cov = min(character_coverage(tok, data.src_lang), character_coverage(tok, data.tgt_lang))
            log.info(
                "training a joint SentencePiece %s model, vocabulary %d", tok.model_type.value, tok.vocab_size
            )
            path = train_sentencepiece(
                [text[data.src_lang], text[data.tgt_lang]],
                out_dir / "spm.joint",
                vocab_size=tok.vocab_size,
                character_coverage=cov,
                input_sentence_size=2 * tok.input_sentence_size,
                **{k: v for k, v in common.items() if k != "input_sentence_size"},
            )
            paths = {"src": path, "tgt": path}
        else:
            paths = {}
            for side, lang, size in (
                ("src", data.src_lang, tok.src_vocab_size),
                ("tgt", data.tgt_lang, tok.tgt_vocab_size),
            ):
                size = size or tok.vocab_size
                log.info(
                    "training SentencePiece %s for %s (%s), vocabulary %d",
                    tok.model_type.value,
                    side,
                    lang,
                    size,
                )
                paths[side] = train_sentencepiece(
                    [text[lang]],
                    out_dir / f"spm.{side}",
                    vocab_size=size,
                    character_coverage=character_coverage(tok, lang),
                    **common,
                )
    finally:
        for p in text.values():
            p.unlink(missing_ok=True)
    for side in ("src", "tgt"):
        if paths[side] != out_dir / f"spm.{side}.model":
            (out_dir / f"spm.{side}.model").write_bytes(paths[side].read_bytes())
    src_tok, tgt_tok = Tokenizer.load(out_dir / "spm.src.model"), Tokenizer.load(out_dir / "spm.tgt.model")
    for side, t, asked in (("src", src_tok, tok.src_vocab_size), ("tgt", tgt_tok, tok.tgt_vocab_size)):
        asked = tok.vocab_size if tok.joint or not asked else asked
        if len(t) < asked:
            log.info(
                "%s vocabulary: %d pieces (asked for %d; the training text supports no more)",
                side,
                len(t),
                asked,
            )
    return src_tok, tgt_tok


def load_prepared(out_dir: Path) -> Prepared:
    manifest_path = out_dir / "manifest.json"
    if not manifest_path.is_file():
        raise NmtError(f"{out_dir}: no prepared data (run nmt-prepare with the same settings first)")
    try:
        manifest = json.loads(manifest_path.read_text())
        splits = {s: EncodedSplit.load(out_dir / f"{s}.npz") for s in ("train", "dev", "test")}
        src_tok, tgt_tok = (
            Tokenizer.load(out_dir / "spm.src.model"),
            Tokenizer.load(out_dir / "spm.tgt.model"),
        )
    except (OSError, ValueError, KeyError, RuntimeError, zipfile.BadZipFile) as e:
        raise NmtError(
            f"{out_dir}: prepared data is damaged ({type(e).__name__}: {str(e).splitlines()[0][:120]})"
        ) from None
    return Prepared(src_tok, tgt_tok, splits, manifest)
