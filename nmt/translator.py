"""Raw source lines in, translations out: one result per input line, in the input's order.

Lines are read as bytes and split on "\\n" only, so the count always matches ``wc -l``. Each chunk
of lines is encoded, sorted by length, cut into token-budget batches, searched, and put back in
input order; empty lines give empty translations without touching the model. A line that is not
UTF-8 or that is longer than ``max_input_len`` pieces stops with an error naming it, or, when the
user asks for it (``on_bad_line=fix``), is repaired (U+FFFD / truncation) with a warning. Nothing
is ever dropped silently.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from nmt import NmtError
from nmt.config import BadLine, SearchConfig
from nmt.data.batching import batch_indices, pad
from nmt.data.corpus import decode_utf8_line
from nmt.data.tokenizer import Tokenizer
from nmt.search import Hypothesis, SearchModel, search

log = logging.getLogger(__name__)


@dataclass
class Translation:
    text: str
    score: float | None  # None for an empty input line
    log_prob: float | None
    nbest: list[tuple[str, float, float]] = field(default_factory=list)  # (text, score, log_prob), best first
    src_pieces: list[str] | None = None
    tgt_pieces: list[str] | None = None
    attention: list[list[float]] | None = None  # (target pieces + EOS) x source pieces


def decode_ids(
    model: SearchModel,
    src: list[np.ndarray] | list[list[int]],
    cfg: SearchConfig,
    device: torch.device,
    batch_size: int = 4096,
    with_attention: bool = False,
    on_batch=None,
    max_sentences: int = 0,
    keys: list[int] | None = None,
) -> list[list[Hypothesis]]:
    """Piece-id sequences (each non-empty) -> hypotheses in the same order, batched by length.

    ``batch_size`` bounds source pieces per batch times the beam size, so beam search batches
    hold as many hypotheses as greedy ones; ``max_sentences`` (> 0) caps sentences per batch.
    ``keys``: each sequence's random stream for sampling (default: its position), so the result
    does not depend on the batching. ``on_batch(positions)`` is called after each batch with the
    positions in ``src`` it decoded.
    """
    key_arr = np.asarray(keys if keys is not None else range(len(src)), dtype=np.int64)
    lens = np.array([len(s) for s in src], dtype=np.int64)
    width = cfg.beam_size if cfg.method.value == "beam" else 1
    out: list[list[Hypothesis] | None] = [None] * len(src)
    for idx in batch_indices(
        lens, None, max(batch_size // width, 1), by_tokens=True, max_sents=max_sentences
    ):
        idx = idx[np.argsort(-lens[idx], kind="stable")]
        seqs = [np.asarray(src[i]) for i in idx]
        src_t = pad(seqs).to(device, non_blocking=True)  # (batch, src_len)
        src_lens = torch.from_numpy(lens[idx])
        batch_keys = torch.from_numpy(key_arr[idx])
        for i, hyps in zip(idx, search(model, src_t, src_lens, cfg, with_attention, batch_keys)):
            out[i] = hyps
        if on_batch is not None:
            on_batch(idx)
    return out  # type: ignore[return-value]


class Translator:
    """A model and its tokenizers, turning chunks of raw lines into ``Translation``s."""

    def __init__(
        self,
        model: SearchModel,
        src_tok: Tokenizer,
        tgt_tok: Tokenizer,
        cfg: SearchConfig,
        device: torch.device,
        batch_size: int = 4096,
        max_input_len: int = 250,
        on_bad_line: BadLine = BadLine.error,
        with_attention: bool = False,
        max_sentences: int = 0,
    ) -> None:
        self.model, self.src_tok, self.tgt_tok, self.cfg = model, src_tok, tgt_tok, cfg
        self.device, self.batch_size, self.max_input_len = device, batch_size, max_input_len
        self.on_bad_line, self.with_attention, self.max_sentences = on_bad_line, with_attention, max_sentences

    def check_line(self, raw: bytes, name: str, lineno: int) -> str:
        """Bytes of one line (without "\\n") to text, applying the bad-line policy."""
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            return decode_utf8_line(raw, name, lineno)
        except NmtError as e:
            if self.on_bad_line == BadLine.error:
                raise NmtError(f"{e} (use on_bad_line=fix to replace bad bytes)") from None
            log.warning("%s; bad bytes replaced with U+FFFD", e)
            return raw.decode("utf-8", errors="replace")

    def encode(self, lines: list[str], name: str, first_lineno: int) -> list[list[int]]:
        ids = self.src_tok.encode(lines)
        for k, seq in enumerate(ids):
            if len(seq) > self.max_input_len:
                where = f"{name}:{first_lineno + k}"
                if self.on_bad_line == BadLine.error:
                    raise NmtError(
                        f"{where}: line has {len(seq)} source pieces, more than max_input_len={self.max_input_len} "
                        "(raise max_input_len, or use on_bad_line=fix to truncate)"
                    )
                log.warning(
                    "%s: line has %d source pieces; truncated to %d", where, len(seq), self.max_input_len
                )
                ids[k] = seq[: self.max_input_len]
        return ids

    def translate(
        self, lines: list[str], name: str = "<input>", first_lineno: int = 1, on_batch=None
    ) -> list[Translation]:
        """Text lines -> one Translation each, same order; blank lines give empty translations.

        Greedy and beam search translate each distinct line of the chunk once (a line's
        translation depends on nothing else); sampling draws for every line on its own.
        """
        ids = self.encode(lines, name, first_lineno)
        todo = [k for k, seq in enumerate(ids) if seq]
        dedupe = self.cfg.method.value != "sample"
        copies = Counter(tuple(seq) for seq in ids) if dedupe else Counter()
        if dedupe:  # the first line of each distinct source stands for all its copies
            first: dict[tuple[int, ...], int] = {}
            for k in todo:
                first.setdefault(tuple(ids[k]), k)
            todo = list(first.values())

        def progress(positions: np.ndarray) -> None:  # lines done, every copy counted
            if on_batch is not None:
                on_batch(sum(copies[tuple(ids[todo[i]])] for i in positions) if dedupe else len(positions))

        hyps = decode_ids(
            self.model,
            [ids[k] for k in todo],
            self.cfg,
            self.device,
            self.batch_size,
            self.with_attention,
            progress,
            self.max_sentences,
            keys=[first_lineno + k for k in todo],  # sampling follows the line number, not the batch
        )
        out = [Translation("", None, None) for _ in lines]
        for k, h in zip(todo, hyps):
            out[k] = self._result(ids[k], h)
        if dedupe:
            done = {tuple(ids[k]): out[k] for k in todo}
            out = [done[tuple(seq)] if seq else t for seq, t in zip(ids, out)]
        blank = len(lines) - sum(1 for seq in ids if seq)
        if on_batch is not None and blank:
            on_batch(blank)
        return out

    def _result(self, src_ids: list[int], hyps: list[Hypothesis]) -> Translation:
        texts = self.tgt_tok.decode([h.tokens for h in hyps])
        best = hyps[0]
        t = Translation(
            texts[0],
            _num(best.score),
            _num(best.log_prob),
            [(s, _num(h.score), _num(h.log_prob)) for s, h in zip(texts, hyps)],
        )
        if self.with_attention:
            t.src_pieces = self.src_tok.pieces(src_ids)
            t.tgt_pieces = self.tgt_tok.pieces(best.tokens) + ["</s>"]
            if best.attention is not None:
                att = best.attention[:, : len(src_ids)]  # (target pieces + EOS, source pieces), padding cut
                t.attention = [[round(float(x), 4) for x in row] for row in att.tolist()]
        return t

    def stream(
        self, raw_lines: Iterable[bytes], name: str, chunk_lines: int, on_batch=None
    ) -> Iterator[Translation]:
        """Raw lines (bytes, "\\n" stripped) -> translations, ``chunk_lines`` at a time (bounded memory).

        With ``on_bad_line=error`` the first bad line of the input is the one reported, whichever
        check it fails (checking lengths needs the chunk's earlier lines encoded first).
        """
        chunk: list[str] = []
        first = 1
        for lineno, raw in enumerate(raw_lines, start=1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):  # a byte order mark, not text
                raw = raw[3:]
            try:
                chunk.append(self.check_line(raw, name, lineno))
            except NmtError:
                self.encode(chunk, name, first)  # an earlier line that is too long is reported first
                raise
            if len(chunk) >= chunk_lines:
                yield from self.translate(chunk, name, first, on_batch)
                chunk, first = [], lineno + 1
        if chunk:
            yield from self.translate(chunk, name, first, on_batch)


def _num(x: float) -> float | None:
    return None if x == float("-inf") else x


def read_raw_lines(stream) -> Iterator[bytes]:
    """Lines of a binary stream split on b"\\n" only (never on other Unicode line breaks)."""
    for raw in stream:
        yield raw[:-1] if raw.endswith(b"\n") else raw
