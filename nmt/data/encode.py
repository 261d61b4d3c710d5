"""Chunks of a parallel corpus in, processed text or encoded pairs out, in worker processes.

A ``Worker`` holds what one corpus needs: its text processing (None for a corpus already in the
model's form), the SentencePiece models (once they exist) and the filters. It reads its chunk
itself (``nmt.data.files.read_chunk``), so the main process only hands out byte ranges and
writes what comes back, in order. ``run`` maps a worker over chunks in ``workers`` processes
(or in this one, for ``workers=1``) with a bounded number of chunks in flight, so memory does
not grow with the corpus.

Sampling subwords afresh every epoch (subword regularisation) is this same step moved into the
training data loader's workers: ``Worker.encode`` with a sampling SentencePiece call instead of
the deterministic one, on the text a prepare keeps instead of the ids.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from nmt.data.files import Chunk, read_chunk
from nmt.data.filters import Filters, pair_hashes
from nmt.data.text import TextProcessor
from nmt.data.tokenizer import Tokenizer

log = logging.getLogger(__name__)


@dataclass
class Encoded:
    """A chunk's kept pairs: flat ids and lengths per side, lines (0-based), hashes (with dedup),
    and how many pairs each filter dropped."""

    src: tuple[np.ndarray, np.ndarray]
    tgt: tuple[np.ndarray, np.ndarray]
    lines: np.ndarray
    hashes: np.ndarray | None
    dropped: dict[str, int]
    read: int
    first: int = 0


@dataclass
class Worker:
    processor: TextProcessor | None  # None: the corpus is in the model's form already
    filters: Filters
    models: tuple[bytes, bytes] | None = None  # serialized SentencePiece models (src, tgt)
    _toks: tuple[Tokenizer, Tokenizer] | None = field(default=None, init=False, repr=False)

    def text(self, chunk: Chunk) -> tuple[list[str], list[str]]:
        """The chunk's pairs in the model's text form."""
        src = read_chunk(chunk.src, chunk.src_range, chunk.first, chunk.count)
        tgt = read_chunk(chunk.tgt, chunk.tgt_range, chunk.first, chunk.count)
        if self.processor is not None:
            src = [self.processor.source(line).text for line in src]
            tgt = [self.processor.target_corpus(line) for line in tgt]
        return src, tgt

    def sample(self, chunk: Chunk, picks: tuple[int, ...]) -> tuple[list[str], list[str]]:
        """The processed text of the pairs ``picks`` (line numbers in this chunk) that have text
        on both sides: SentencePiece's training sample."""
        src, tgt = self.text(chunk)
        rows = [line - chunk.first for line in picks]
        rows = [r for r in rows if src[r].strip() and tgt[r].strip()]
        return [src[r] for r in rows], [tgt[r] for r in rows]

    def encode(self, chunk: Chunk) -> Encoded:
        """The chunk's pairs through the filters and SentencePiece."""
        if self._toks is None:
            assert self.models is not None
            self._toks = (Tokenizer(self.models[0]), Tokenizer(self.models[1]))
        src, tgt = self.text(chunk)
        f = self.filters
        drops = f.text_drops(src, tgt)
        rows = [r for r, why in enumerate(drops) if why is None]
        s_ids = self._toks[0].encode([src[r] for r in rows], threads=1)
        t_ids = self._toks[1].encode([tgt[r] for r in rows], threads=1)
        s_lens = np.fromiter(map(len, s_ids), dtype=np.int64, count=len(rows))
        t_lens = np.fromiter(map(len, t_ids), dtype=np.int64, count=len(rows))
        length = f.length_drops(s_lens, t_lens)
        ok = np.flatnonzero(length == 0)
        dropped = dict.fromkeys(f.names(), 0)
        for why in drops:
            if why is not None:
                dropped[why] += 1
        for k, name in enumerate(("no_pieces", "too_long", "ratio"), start=1):
            if name in dropped:
                dropped[name] += int((length == k).sum())
        kept = [rows[i] for i in ok]
        hashes = pair_hashes([src[r] for r in kept], [tgt[r] for r in kept]) if f.dedup else None
        return Encoded(
            (_flat([s_ids[i] for i in ok]), s_lens[ok]),
            (_flat([t_ids[i] for i in ok]), t_lens[ok]),
            chunk.first + np.asarray(kept, dtype=np.int64),
            hashes,
            dropped,
            chunk.count,
            chunk.first,
        )


def _flat(seqs: list[list[int]]) -> np.ndarray:
    total = sum(map(len, seqs))
    return np.fromiter(itertools.chain.from_iterable(seqs), dtype=np.int32, count=total)


# ----------------------------------------------------------------------------- processes

_worker: Worker | None = None  # the Worker of this worker process (set by _init)


def _init(worker: Worker) -> None:
    global _worker
    _worker = worker
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _call(task: tuple[str, tuple]) -> object:
    assert _worker is not None
    method, args = task
    return getattr(_worker, method)(*args)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def run(worker: object, method: str, tasks: Iterable[tuple], workers: int, spawn: bool = False) -> Iterator:
    """``getattr(worker, method)(*task)`` for every task, in order: in ``workers`` processes
    (spawned: nothing inherited but the worker), at most two tasks each in flight; in this
    process for one worker or one task, unless ``spawn``. ``tasks`` is read as it goes."""
    tasks = iter(tasks)
    head = list(itertools.islice(tasks, 2))
    tasks = itertools.chain(head, tasks)
    if not spawn and (workers <= 1 or len(head) <= 1):
        call = getattr(worker, method)
        for args in tasks:
            yield call(*args)
        return
    workers = max(workers, 1)
    with start_pool(worker, workers) as pool:
        yield from run_in(pool, workers, method, tasks)


def start_pool(worker: object, workers: int):  # noqa: ANN201 - a multiprocessing Pool
    """``workers`` spawned processes, each holding ``worker`` (nothing else inherited)."""
    return multiprocessing.get_context("spawn").Pool(workers, initializer=_init, initargs=(worker,))


def run_in(pool, workers: int, method: str, tasks: Iterable[tuple]) -> Iterator:  # noqa: ANN001
    """``run`` on a pool that lives longer than one call (its workers keep what they cached)."""
    pending: deque = deque()
    for args in tasks:
        if len(pending) >= 2 * workers:
            yield pending.popleft().get()
        pending.append(pool.apply_async(_call, ((method, args),)))
    while pending:
        yield pending.popleft().get()


class LineProgress:
    """Lines done, lines per second and the time left: a bar on a terminal, else a log line
    every ``every`` seconds (for logs that a person reads later)."""

    def __init__(self, total: int, desc: str, every: float = 30.0) -> None:
        self.total, self.desc, self.every = total, desc, every
        self.done, self.start, self.last = 0, time.perf_counter(), time.perf_counter()
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="line", unit_scale=True, dynamic_ncols=True)

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.perf_counter()
        if now - self.last >= self.every and self.done < self.total:
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            left = (self.total - self.done) / max(rate, 1e-9)
            log.info(
                "%s: %s of %s lines (%d%%), %s lines/s, %s left",
                self.desc,
                f"{self.done:,}",
                f"{self.total:,}",
                100 * self.done // max(self.total, 1),
                f"{rate:,.0f}",
                _duration(left),
            )

    def close(self) -> float:
        """Closes the bar; returns the seconds taken."""
        if self.bar is not None:
            self.bar.close()
        return time.perf_counter() - self.start


def _duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
