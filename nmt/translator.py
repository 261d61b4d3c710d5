"""Raw source lines in, translations out: one result per input line, in the input's order.

Lines are read as bytes and split on "\\n" only, so the count always matches ``wc -l``. Each line
is brought to the model's input form (``nmt.data.text``: the normalisation, tokenisation and
casing its corpus had), each chunk of lines is encoded, sorted by length, cut into token-budget
batches, searched, put back in input order, and turned back into plain text (segmented Japanese
joined, unknown pieces replaced by the source word they attend to most). Empty lines give empty
translations without touching the model. A line that is not UTF-8 or that is longer than
``max_input_len`` pieces stops with an error naming it, or, when the user asks for it
(``on_bad_line=fix``), is repaired (U+FFFD / truncation) with a warning. Nothing is ever dropped
silently.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from nmt import NmtError
from nmt.config import BadLine, OutputFormat, Precision, Quantize, SearchConfig, SearchMethod
from nmt.data.batching import batch_indices, pad
from nmt.data.files import decode_utf8_line
from nmt.data.text import Prepared, TextProcessor
from nmt.data.tokenizer import UNK, Tokenizer
from nmt.runtime import DecodePool, autocast, autocast_dtype, describe_precision, plan_workers
from nmt.search import Hypothesis, SearchModel, search
from nmt.search.constrained import constrained_search
from nmt.search.forced import force
from nmt.search.precision import PROBE_MAX_SENTENCES, PROBE_SOURCE_LEN, Choice, remembered

if TYPE_CHECKING:
    from nmt.textio import FileStats

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
    unknown: int = 0  # unknown pieces in the model's best output (before replacement)
    unknown_left: int = 0  # ... and left in ``text`` (replace_unk=false)
    replaced: list[str | None] | None = None  # per target piece: the source word replace_unk put there


@dataclass
class Options:
    """How a Translator treats its input and output (nmt-translate's and nmt-evaluate's settings)."""

    batch_size: int = 4096  # source pieces per batch (x beam size)
    max_sentences: int = 0  # and at most this many sentences per batch (0: no cap)
    max_input_len: int = 250  # source pieces; longer lines are handled by on_bad_line
    on_bad_line: BadLine = BadLine.error
    with_attention: bool = False  # keep pieces and attention in each Translation
    keep_segmentation: bool = False  # the target as the model writes it (segmented, tokenised)
    replace_unk: bool = True  # unknown target pieces -> the source word they attend to most
    processed: bool = False  # inputs are already in the model's form (a corpus's own test set)
    precision: Precision = Precision.auto  # bf16 autocast where the hardware has it natively
    quantize: Quantize = Quantize.none  # int8 dynamically quantized model (CPU)
    compile: bool = False  # torch.compile the decoder step (nmt/model/capture.py)
    workers: int = 0  # CPU: batches decoded side by side (0: auto, 1: one at a time); see plan_workers
    constraints: bool = False  # input lines are "source<TAB>term<TAB>term...": each term must appear
    ordered_constraints: bool = False  # ... in the order given
    # (ignored with compile=true: a compiled step stays on one thread)


def _has_parameters(model: SearchModel) -> bool:
    """Whether a model has weights, so its arithmetic can be timed (a test's stand-in has none)."""
    params = getattr(model, "parameters", None)
    return callable(params) and next(iter(params()), None) is not None


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
    pool: DecodePool | None = None,
    constraints: list[list[list[int]]] | None = None,
    ordered: bool = False,
) -> list[list[Hypothesis]]:
    """Piece-id sequences (each non-empty) -> hypotheses in the same order, batched by length.

    ``batch_size`` bounds source pieces per batch times the beam size, so beam search batches
    hold as many hypotheses as greedy ones; ``max_sentences`` (> 0) caps sentences per batch.
    ``keys``: each sequence's random stream for sampling (default: its position), so the result
    does not depend on the batching. ``pool``: workers that decode the batches side by side (a
    single batch runs in the calling thread on all its threads). ``on_batch(positions)`` is
    called after each batch, in batch order, with the positions in ``src`` it decoded.
    ``constraints[i]``: the target phrases (piece ids) sequence i must contain, found by
    constrained beam search (``ordered``: in the order given); ``cfg`` must then be a beam search.
    """
    key_arr = np.asarray(keys if keys is not None else range(len(src)), dtype=np.int64)
    lens = np.array([len(s) for s in src], dtype=np.int64)
    width = cfg.beam_size if cfg.method.value == "beam" else 1
    batches = [
        idx[np.argsort(-lens[idx], kind="stable")]
        for idx in batch_indices(
            lens, None, max(batch_size // width, 1), by_tokens=True, max_sents=max_sentences
        )
    ]

    def run(idx: np.ndarray) -> list[list[Hypothesis]]:
        src_t = pad([np.asarray(src[i]) for i in idx]).to(device, non_blocking=True)  # (batch, src_len)
        src_lens = torch.from_numpy(lens[idx])
        if constraints is not None:
            terms = [constraints[i] for i in idx]
            return constrained_search(model, src_t, src_lens, cfg, terms, ordered, with_attention)
        return search(model, src_t, src_lens, cfg, with_attention, torch.from_numpy(key_arr[idx]))

    out: list[list[Hypothesis] | None] = [None] * len(src)
    results = pool.map(run, batches, device) if pool is not None and len(batches) > 1 else map(run, batches)
    for idx, hyps in zip(batches, results):
        for i, h in zip(idx, hyps):
            out[i] = h
        if on_batch is not None:
            on_batch(idx)
    return out  # type: ignore[return-value]


class Translator:
    """A model, its tokenizers and its text processing, turning raw lines into ``Translation``s.

    ``translate(lines)`` gives plain texts; ``translate_detailed`` the scores, n-best lists and
    (``options.with_attention``) pieces and attention; ``stream`` a whole file in bounded memory.
    """

    def __init__(
        self,
        model: SearchModel,
        src_tok: Tokenizer,
        tgt_tok: Tokenizer,
        cfg: SearchConfig,
        device: torch.device,
        options: Options | None = None,
        text: TextProcessor | None = None,
    ) -> None:
        self.model, self.src_tok, self.tgt_tok, self.cfg, self.device = model, src_tok, tgt_tok, cfg, device
        self.options = options or Options()
        self.text = text
        self._pool: DecodePool | None = None  # started by the first translation
        self._pool_planned = False
        self._precision: Choice | None = None  # decided by the first translation (or describe_precision)

    def _decode_pool(self) -> DecodePool | None:
        """The workers of ``options.workers`` (none for one worker, or a compiled step)."""
        if not self._pool_planned:
            self._pool_planned = True
            amp = self.precision().dtype is not None
            workers, threads = plan_workers(self.options.workers, self.device, amp)
            if workers > 1 and not self.options.compile:
                self._pool = DecodePool(workers, threads)
                log.debug(  # debug: a run that ends in an error prints that line alone
                    "%d decoding workers, %d thread(s) each (workers=1: one batch at a time)",
                    workers,
                    threads,
                )
        return self._pool

    def close(self) -> None:
        """Stop the decoding workers (they also stop when the Translator is garbage-collected)."""
        if self._pool is not None:
            self._pool.close()
            self._pool, self._pool_planned = None, False

    def __enter__(self) -> Translator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def autocast(self):  # noqa: ANN201
        """The autocast context decoding runs in (``precision``)."""
        return autocast(self.device, self.precision().dtype)

    def precision(self) -> Choice:
        """The arithmetic decoding uses, decided once: none for an int8 model; for
        ``precision=auto`` on a CPU with native bf16, whichever of bf16 and float32 runs this
        model's decoder step faster at the rows of this translator's batches
        (``nmt.search.precision``, remembered per machine and model); otherwise as
        ``options.precision`` says. The command-line
        tools log ``.why``."""
        if self._precision is None:
            o = self.options
            if o.quantize == Quantize.int8:
                self._precision = Choice(None, "int8 (quantize=int8)")
            elif o.precision != Precision.auto or o.compile or not _has_parameters(self.model):
                self._precision = Choice(
                    autocast_dtype(o.precision, self.device), describe_precision(o.precision, self.device)
                )
            else:
                beam = self.cfg.beam_size if self.cfg.method.value == "beam" else 1
                per_batch = max(1, o.batch_size // (beam * PROBE_SOURCE_LEN))  # sentences a batch holds
                sentences = min(o.max_sentences or PROBE_MAX_SENTENCES, per_batch, PROBE_MAX_SENTENCES)
                c = remembered(self.model, self.device, sentences, beam)
                used = "fp32" if c.dtype is None else str(c.dtype).replace("torch.", "") + " autocast"
                self._precision = Choice(c.dtype, f"{used} (precision=auto: {c.why})")
        return self._precision

    def decided_precision(self) -> Choice | None:
        """``precision()`` if it has been decided (by a translation), else None: nothing is probed."""
        return self._precision

    # ------------------------------------------------------------------ input

    def check_line(self, raw: bytes, name: str, lineno: int) -> str:
        """Bytes of one line (without "\\n") to text, applying the bad-line policy."""
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            return decode_utf8_line(raw, name, lineno)
        except NmtError as e:
            if self.options.on_bad_line == BadLine.error:
                raise NmtError(f"{e} (use on_bad_line=fix to replace bad bytes)") from None
            log.warning("%s; bad bytes replaced with U+FFFD", e)
            return raw.decode("utf-8", errors="replace")

    def prepare(self, lines: list[str]) -> list[Prepared]:
        """Lines as typed to the model's input form (unless they are in it already)."""
        if self.text is None or self.options.processed:
            return [Prepared(line, line.split()) for line in lines]
        return [self.text.source(line) for line in lines]

    def encode(self, lines: list[str], name: str, first_lineno: int) -> list[list[int]]:
        ids = self.src_tok.encode(lines)
        limit = self.options.max_input_len
        for k, seq in enumerate(ids):
            if len(seq) > limit:
                where = f"{name}:{first_lineno + k}"
                if self.options.on_bad_line == BadLine.error:
                    raise NmtError(
                        f"{where}: line has {len(seq)} source pieces, more than max_input_len={limit} "
                        "(raise max_input_len, or use on_bad_line=fix to truncate)"
                    )
                log.warning("%s: line has %d source pieces; truncated to %d", where, len(seq), limit)
                ids[k] = seq[:limit]
        return ids

    # ------------------------------------------------------------------ translation

    def translate(
        self, lines: str | list[str], constraints: list[str] | list[list[str]] | None = None
    ) -> str | list[str]:
        """Plain text in, plain text out: one sentence, or a list of them (one result each, in
        order); ``constraints``: target terms it must contain (a list of terms for one sentence,
        a list of such lists for a list of sentences)."""
        if isinstance(lines, str):
            terms = [constraints] if constraints else None
            return self.translate_detailed([lines], constraints=terms)[0].text  # type: ignore[list-item]
        return [t.text for t in self.translate_detailed(lines, constraints=constraints)]  # type: ignore[arg-type]

    def translate_file(
        self,
        source: str | Path,
        target: str | Path,
        fmt: OutputFormat | str = OutputFormat.text,
        chunk_lines: int = 20000,
    ) -> FileStats:
        """A file (or "-", stdin) to a file (or "-", stdout), one line out per line in, written
        atomically; ``fmt="jsonl"`` writes scores and n-best lists too."""
        from nmt.textio import translate_file

        return translate_file(self, source, target, OutputFormat(fmt), chunk_lines)

    def translate_detailed(
        self,
        lines: list[str],
        name: str = "<input>",
        first_lineno: int = 1,
        on_batch=None,
        search: SearchConfig | None = None,
        with_attention: bool | None = None,
        constraints: list[list[str]] | None = None,
        ordered: bool | None = None,
    ) -> list[Translation]:
        """Text lines -> one Translation each, same order; blank lines give empty translations.

        Greedy and beam search translate each distinct line of the chunk once (a line's
        translation depends on nothing else); sampling draws for every line on its own.
        ``search`` and ``with_attention`` replace the translator's own settings for this call
        (nmt-serve's requests choose their beam size, alpha, n-best and attention).
        ``constraints[i]``: target terms line i must contain (``ordered``: in that order; default
        ``options.ordered_constraints``), found by constrained beam search; with
        ``options.constraints`` they come from the lines themselves ("source<TAB>term<TAB>...").
        """
        cfg = self.cfg if search is None else search
        attend = self.options.with_attention if with_attention is None else with_attention
        if constraints is None and self.options.constraints:  # "source<TAB>term<TAB>term..."
            lines, constraints = split_constraints(lines)
        if constraints is not None and any(constraints):
            in_order = self.options.ordered_constraints if ordered is None else ordered
            return self._constrained(lines, constraints, cfg, attend, in_order, name, first_lineno, on_batch)
        prepared = self.prepare(lines)
        ids = self.encode([p.text for p in prepared], name, first_lineno)
        todo = [k for k, seq in enumerate(ids) if seq]
        dedupe = cfg.method.value != "sample"
        copies = Counter(tuple(seq) for seq in ids) if dedupe else Counter()
        if dedupe:  # the first line of each distinct source stands for all its copies
            first: dict[tuple[int, ...], int] = {}
            for k in todo:
                first.setdefault(tuple(ids[k]), k)
            todo = list(first.values())

        def progress(positions: np.ndarray) -> None:  # lines done, every copy counted
            if on_batch is not None:
                on_batch(sum(copies[tuple(ids[todo[i]])] for i in positions) if dedupe else len(positions))

        hyps: list[list[Hypothesis]] = []
        picks: dict = {}
        if todo:  # (only blank lines: no model, no probe of its precision)
            hyps, picks = self._search(
                [ids[k] for k in todo],
                cfg,
                attend,
                progress,
                keys=[first_lineno + k for k in todo],  # sampling follows the line number, not the batch
            )
        searched = {k: i for i, k in enumerate(todo)}  # line -> its search
        if dedupe:  # every copy of a line: the search of the first, its own words for unknown pieces
            of_source = {tuple(ids[k]): i for i, k in enumerate(todo)}
            searched = {k: of_source[tuple(seq)] for k, seq in enumerate(ids) if seq}
        out = [Translation("", None, None) for _ in lines]
        for k, i in searched.items():
            out[k] = self._result(ids[k], prepared[k], hyps[i], picks.get(i, {}), attend)
        blank = len(lines) - sum(1 for seq in ids if seq)
        if on_batch is not None and blank:
            on_batch(blank)
        return out

    def _constrained(
        self,
        lines: list[str],
        constraints: list[list[str]],
        cfg: SearchConfig,
        attend: bool,
        ordered: bool,
        name: str,
        first_lineno: int,
        on_batch,  # noqa: ANN001
    ) -> list[Translation]:
        """Lines with target terms: constrained beam search (``nmt.search.constrained``, beam size
        ``search.beam_size`` whatever the method) for the lines that have terms, the ordinary
        search for the others."""
        if len(constraints) != len(lines):
            raise NmtError(f"{len(constraints)} lists of constraints for {len(lines)} lines")
        if cfg.method == SearchMethod.sample:
            raise NmtError("constraints need greedy or beam search, not sampling")
        plain = [k for k, c in enumerate(constraints) if not c]
        out: list[Translation] = [Translation("", None, None) for _ in lines]
        if plain:
            for k, t in zip(
                plain,
                self.translate_detailed(
                    [lines[k] for k in plain], name, search=cfg, with_attention=attend, constraints=[]
                ),
            ):
                out[k] = t
        wanted = [k for k, c in enumerate(constraints) if c]
        prepared = self.prepare([lines[k] for k in wanted])
        ids = [self.encode([p.text], name, first_lineno + k)[0] for p, k in zip(prepared, wanted)]
        phrases = [
            [self.constraint_ids(term, name, first_lineno + k) for term in constraints[k]] for k in wanted
        ]
        beam_cfg = replace(cfg, method=SearchMethod.beam)
        todo = [j for j, seq in enumerate(ids) if seq]
        hyps: list[list[Hypothesis]] = []
        picks: dict = {}
        if todo:
            hyps, picks = self._search(
                [ids[j] for j in todo],
                beam_cfg,
                attend,
                (lambda positions: on_batch(len(positions))) if on_batch is not None else None,
                constraints=[phrases[j] for j in todo],
                ordered=ordered,
            )
        for i, j in enumerate(todo):
            out[wanted[j]] = self._result(ids[j], prepared[j], hyps[i], picks.get(i, {}), attend)
        for j, seq in enumerate(ids):
            if not seq:  # a blank line with terms: the terms are the translation
                terms = Hypothesis([p for ph in phrases[j] for p in ph], 0.0, 0.0)
                out[wanted[j]] = self._result(seq, prepared[j], [terms], {}, False)
        if on_batch is not None and len(lines) > len(todo):
            on_batch(len(lines) - len(todo))
        return out

    def _search(
        self,
        seqs: list[list[int]],
        cfg: SearchConfig,
        attend: bool,
        progress,
        **extra,  # noqa: ANN001, ANN003
    ) -> tuple[list[list[Hypothesis]], dict]:
        """Non-empty piece-id sequences -> their hypotheses (``decode_ids`` with the translator's
        batching, workers and precision; ``extra``: its keys, constraints, ordered) and the
        replace_unk picks."""
        o = self.options
        with self.autocast():
            hyps = decode_ids(
                self.model, seqs, cfg, self.device, o.batch_size, attend, progress, o.max_sentences,
                pool=self._decode_pool(), **extra,
            )  # fmt: skip
            return hyps, self._unk_picks(seqs, hyps) if o.replace_unk else {}

    def constraint_ids(self, term: str, name: str = "<constraint>", lineno: int = 0) -> list[int]:
        """A target term as the model writes it: the target side's text processing (for a corpus
        segmented into words, MeCab's words for Japanese), SentencePiece, and for a language
        written without spaces no word-start mark (a term inside a Japanese sentence follows
        other characters, not a space)."""
        text = term.strip()
        if self.text is not None and self.text.segmented and self.text.tgt_lang == "ja":
            text = _mecab_words(text)
        elif self.text is not None:
            text = self.text.target_corpus(text)
        ids = self.tgt_tok.encode([text])[0]
        unspaced = self.text is not None and not self.text.segmented and self.text.tgt_lang in NO_SPACES
        if ids and unspaced:
            first = self.tgt_tok.pieces(ids[:1])[0]
            if first == "\u2581":
                ids = ids[1:]
            elif first.startswith("\u2581"):
                bare = self.tgt_tok.piece_id(first[1:])
                ids = [bare, *ids[1:]] if bare != UNK else ids
        where = f"{name}:{lineno}" if lineno else name
        if not ids:
            raise NmtError(f"{where}: the term {term!r} has no target pieces")
        if UNK in ids:
            raise NmtError(
                f"{where}: the term {term!r} has characters the model cannot write (an unknown piece)"
            )
        return ids

    def _result(
        self,
        src_ids: list[int],
        prepared: Prepared,
        sent: list[Hypothesis],
        picks: dict[int, list[int]],
        with_attention: bool,
    ) -> Translation:
        """One line's Translation from its n-best list; ``picks[n]``: the word of the line that
        each unknown piece of hypothesis n becomes (an index into ``prepared.words``)."""
        words = prepared.words
        texts = [
            self._text(
                h.tokens, [words[w] if 0 <= w < len(words) else "" for w in picks[n]] if n in picks else None
            )
            for n, h in enumerate(sent)
        ]
        best = sent[0]
        unknown = best.tokens.count(UNK)
        t = Translation(
            texts[0],
            _num(best.score),
            _num(best.log_prob),
            [(s, _num(h.score), _num(h.log_prob)) for s, h in zip(texts, sent)],
            unknown=unknown,
            unknown_left=0 if self.options.replace_unk else unknown,
        )
        if with_attention:
            t.src_pieces = self.src_tok.pieces(src_ids)
            t.tgt_pieces = self.tgt_tok.pieces(best.tokens) + ["</s>"]
            copied = iter(picks.get(0, []))
            t.replaced = [
                (words[w] if 0 <= (w := next(copied)) < len(words) else "") if tok == UNK else None
                for tok in best.tokens
            ] + [None]
            if best.attention is not None:
                att = best.attention[:, : len(src_ids)]  # (target pieces + EOS, source pieces), padding cut
                t.attention = [[round(float(x), 4) for x in row] for row in att.tolist()]
        return t

    def _text(self, tokens: list[int], words: list[str] | None) -> str:
        """Target ids to plain text; ``words``: what each unknown piece becomes (in order)."""
        text = self.tgt_tok.decode([tokens])[0] if words is None else self._copy_words(tokens, words)
        return text if self.text is None else self.text.target(text, self.options.keep_segmentation)

    def _copy_words(self, tokens: list[int], words: list[str]) -> str:
        """Decode with each unknown piece replaced by a word of its own (empty: removed)."""
        segments: list[list[int]] = [[]]
        for tok in tokens:
            if tok == UNK:
                segments.append([])
            else:
                segments[-1].append(tok)
        texts = self.tgt_tok.decode(segments)
        out = texts[0]
        for word, seg, seg_text in zip(words, segments[1:], texts[1:]):
            if word:
                out += (" " if out else "") + word
            if seg_text:
                starts_word = self.tgt_tok.pieces(seg[:1])[0].startswith("\u2581")
                out += (" " if starts_word and out else "") + seg_text
        return out

    def _unk_picks(
        self, src_ids: list[list[int]], hyps: list[list[Hypothesis]]
    ) -> dict[int, dict[int, list[int]]]:
        """For every hypothesis (sentence i, rank n) with unknown pieces, ``out[i][n]``: the index of the source
        word each one attends to most (OpenNMT-py's replace_unk, by whole words: the line's own
        word, as typed, is copied in ``_result``). The attention comes from the search when it was
        kept, else from teacher-forcing the hypothesis once more."""
        wanted = [(i, n) for i, sent in enumerate(hyps) for n, h in enumerate(sent) if UNK in h.tokens]
        if not wanted:
            return {}
        missing = [(i, n) for i, n in wanted if hyps[i][n].attention is None]
        forced = force(
            self.model, [src_ids[i] for i, _ in missing], [hyps[i][n].tokens for i, n in missing], self.device
        )
        attention = {key: att for key, (_, att) in zip(missing, forced)}
        out: dict[int, dict[int, list[int]]] = {}
        for i, n in wanted:
            h = hyps[i][n]
            att = attention.get((i, n), h.attention)  # (target pieces + EOS, source pieces)
            word_of = _word_index(self.src_tok.pieces(src_ids[i]))
            out.setdefault(i, {})[n] = [
                word_of[int(att[t, : len(src_ids[i])].argmax())]
                for t, tok in enumerate(h.tokens)
                if tok == UNK
            ]
        return out

    # ------------------------------------------------------------------ files

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
                sources = split_constraints(chunk)[0] if self.options.constraints else chunk
                self.encode(
                    [p.text for p in self.prepare(sources)], name, first
                )  # an earlier long line first
                raise
            if len(chunk) >= chunk_lines:
                yield from self.translate_detailed(chunk, name, first, on_batch)
                chunk, first = [], lineno + 1
        if chunk:
            yield from self.translate_detailed(chunk, name, first, on_batch)


NO_SPACES = {"ja", "zh", "th"}  # languages written without spaces between words


def _mecab_words(text: str) -> str:
    """Japanese text split into MeCab's words (the form of a corpus segmented that way)."""
    from sacrebleu.tokenizers.tokenizer_ja_mecab import TokenizerJaMecab

    return TokenizerJaMecab()(text)


def split_constraints(lines: list[str]) -> tuple[list[str], list[list[str]]]:
    """ "source<TAB>term<TAB>term..." lines -> the sources and each line's terms (blank ones dropped)."""
    fields = [line.split("\t") for line in lines]
    return [f[0] for f in fields], [[t.strip() for t in f[1:] if t.strip()] for f in fields]


def _word_index(pieces: list[str]) -> list[int]:
    """For each SentencePiece piece, the index of the word it belongs to (a piece starting with
    U+2581 starts a word)."""
    out, w = [], -1
    for p in pieces:
        if p.startswith("\u2581") or w < 0:
            w += 1
        out.append(w)
    return out


def _num(x: float) -> float | None:
    return None if x == float("-inf") else x
