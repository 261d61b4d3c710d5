"""SentencePiece for nmt-prepare: a sample of the training pairs in, the two models out.

The sample is every training pair of every corpus up to ``tokenizer.input_sentence_size``, else
that many drawn uniformly across the corpora (chunk by chunk: a hypergeometric share of each
chunk, then which lines; fixed seed), brought to the model's text form by the worker processes.
SentencePiece then trains in a process of its own, so its memory (it holds the sample) is its
own and freed, and reported apart from the rest of the prepare.
"""

from __future__ import annotations

import logging
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from nmt import NmtError
from nmt.checks import character_coverage
from nmt.config import DataConfig, TokenizerConfig
from nmt.data.encode import LineProgress, Worker, run
from nmt.data.files import Chunk
from nmt.data.sources import Source
from nmt.data.store import read_json, write_json
from nmt.data.tokenizer import Tokenizer, train_sentencepiece

log = logging.getLogger(__name__)

SAMPLE_SEED = 20241207  # which lines train SentencePiece when there are more than it takes


def tokenizers(
    train: list[Source],
    chunked: dict[str, tuple[list[Chunk], int]],
    data: DataConfig,
    tok: TokenizerConfig,
    spm_key: dict,
    out_dir: Path,
    workers: int,
) -> tuple[Tokenizer, Tokenizer, dict]:
    """The SentencePiece models of an earlier run with the same sample, or new ones trained on a
    sample of every training corpus (all their pairs up to ``tok.input_sentence_size``)."""
    record = out_dir / "spm.json"
    paths = {side: out_dir / f"spm.{side}.model" for side in ("src", "tgt")}
    old = read_json(record)
    if old.get("key") == spm_key and all(p.is_file() for p in paths.values()):
        try:
            return Tokenizer.load(paths["src"]), Tokenizer.load(paths["tgt"]), old.get("stats", {})
        except (OSError, ValueError, RuntimeError):
            pass
    record.unlink(missing_ok=True)
    total = sum(chunked[s.store][1] for s in train)
    take = min(total, tok.input_sentence_size)
    rng = np.random.default_rng(SAMPLE_SEED)
    texts = {lang: out_dir / f"spm_input.{lang}.txt" for lang in (data.src_lang, data.tgt_lang)}
    t0 = time.perf_counter()
    sampled = 0
    try:
        with (
            open(texts[data.src_lang], "w", encoding="utf-8") as fs,
            open(texts[data.tgt_lang], "w", encoding="utf-8") as ft,
        ):
            left, want = total, take
            for s in train:
                chunks = chunked[s.store][0]
                tasks = []
                for c in chunks:  # how many of this chunk's lines the sample takes, then which
                    k = int(rng.hypergeometric(c.count, left - c.count, want)) if left > c.count else want
                    picks = np.sort(rng.choice(c.count, size=k, replace=False)) if k < c.count else None
                    tasks.append((c, tuple(c.first + (np.arange(c.count) if picks is None else picks))))
                    left, want = left - c.count, want - k
                worker = Worker(s.processor, s.filters)
                progress = LineProgress(sum(c.count for c in chunks), f"{s.corpus}: SentencePiece sample")
                for (c, _), (src, tgt) in zip(tasks, run(worker, "sample", tasks, workers)):
                    fs.write("".join(line + "\n" for line in src))
                    ft.write("".join(line + "\n" for line in tgt))
                    sampled += len(src)
                    progress.update(c.count)
                progress.close()
        if sampled == 0:
            s = train[0]
            raise NmtError(f"{s.src} and {s.tgt}: no training pair has text on both sides")
        read_seconds = time.perf_counter() - t0
        log.info(
            "SentencePiece sample: %d of %d training pairs (%.0f s to read)", sampled, total, read_seconds
        )
        ctx = get_context("spawn")
        with ProcessPoolExecutor(1, mp_context=ctx) as pool:  # its memory is its own, and freed
            trained, stats = pool.submit(
                _train_spm, texts, data.src_lang, data.tgt_lang, tok, out_dir
            ).result()
    finally:
        for p in texts.values():
            p.unlink(missing_ok=True)
    for side in ("src", "tgt"):
        if trained[side] != paths[side]:
            paths[side].write_bytes(Path(trained[side]).read_bytes())
    stats = {"sample_pairs": sampled, "read_seconds": round(read_seconds, 1), **stats}
    log.info(
        "SentencePiece trained in %.0f s, peak memory %s MiB (a process of its own)",
        stats["train_seconds"],
        f"{stats['peak_rss_mib']:,.0f}",
    )
    src_tok, tgt_tok = Tokenizer.load(paths["src"]), Tokenizer.load(paths["tgt"])
    for side, t, asked in (("src", src_tok, tok.src_vocab_size), ("tgt", tgt_tok, tok.tgt_vocab_size)):
        asked = tok.vocab_size if tok.joint or not asked else asked
        if len(t) < asked:
            log.info(
                "%s vocabulary: %d pieces (asked for %d; the training text supports no more)",
                side,
                len(t),
                asked,
            )
    write_json(record, {"key": spm_key, "stats": stats})
    return src_tok, tgt_tok, stats


def _train_spm(
    texts: dict[str, Path], src_lang: str, tgt_lang: str, tok: TokenizerConfig, out_dir: Path
) -> tuple[dict[str, Path], dict]:
    """SentencePiece training (in a process of its own): the model paths and its time and peak memory."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    t0 = time.perf_counter()
    common = dict(
        model_type=tok.model_type.value,
        input_sentence_size=tok.input_sentence_size,
        byte_fallback=tok.byte_fallback,
        split_digits=tok.split_digits,
        normalization=tok.normalization,
    )
    if tok.joint:
        cov = min(character_coverage(tok, src_lang), character_coverage(tok, tgt_lang))
        log.info(
            "training a joint SentencePiece %s model, vocabulary %d", tok.model_type.value, tok.vocab_size
        )
        path = train_sentencepiece(
            [texts[src_lang], texts[tgt_lang]],
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
            ("src", src_lang, tok.src_vocab_size),
            ("tgt", tgt_lang, tok.tgt_vocab_size),
        ):
            size = size or tok.vocab_size
            log.info(
                "training SentencePiece %s for %s (%s), vocabulary %d", tok.model_type.value, side, lang, size
            )
            paths[side] = train_sentencepiece(
                [texts[lang]],
                out_dir / f"spm.{side}",
                vocab_size=size,
                character_coverage=character_coverage(tok, lang),
                **common,
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return paths, {"train_seconds": round(time.perf_counter() - t0, 1), "peak_rss_mib": round(peak, 1)}
