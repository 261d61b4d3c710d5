"""Dynamic batching: the sentences of concurrent requests in, one translation call out.

A request's sentences wait in a queue; a worker takes what arrived within a short window
(``wait_ms``) up to a budget of source words, translates it in one call on the translation thread,
and hands every request its own results. So throughput grows with concurrency (a batch of 64
sentences costs little more than one on a CPU, less still on a GPU) while a lone request waits
only the window. A batch that fails is translated again request by request, so the requests that
shared it with a failing sentence still get their own results. A full queue refuses new work at once (``QueueFull``: the server answers 503),
and a request that gave up (its timeout) is dropped from the queue before it costs anything.
Requests that ask for other search settings (beam size, alpha, n-best, attention: the page's
controls) wait in the same queue and are batched with the requests that ask for the same ones.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from functools import partial

from nmt.config import SearchConfig, SearchMethod
from nmt.translator import Translation, Translator

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """More sentences are waiting than the queue allows."""


@dataclass(frozen=True)
class Settings:
    """What a request asks of the search beyond its sentences; all None: the served model's own."""

    beam_size: int | None = None  # 1: greedy search
    alpha: float | None = None  # GNMT length penalty
    n_best: int | None = None
    attention: bool = False  # pieces and attention in each Translation
    ordered: bool = False  # the terms of "constraints" in the order given

    def search(self, base: SearchConfig) -> SearchConfig | None:
        """``base`` with this request's beam size, alpha and n-best (None: ``base`` unchanged)."""
        if self.beam_size is None and self.alpha is None and self.n_best is None:
            return None
        own_beam = base.beam_size if base.method == SearchMethod.beam else 1
        beam = own_beam if self.beam_size is None else self.beam_size
        return replace(
            base,
            method=SearchMethod.beam if beam > 1 else SearchMethod.greedy,
            beam_size=beam,
            alpha=base.alpha if self.alpha is None else self.alpha,
            nbest=min(base.nbest, beam) if self.n_best is None else self.n_best,
        )


@dataclass
class _Job:
    lines: list[str]
    future: asyncio.Future
    words: int
    settings: Settings = Settings()
    constraints: list[list[str]] | None = None  # per line: target terms it must contain
    queued: float = field(default_factory=time.perf_counter)


class Batcher:
    """One model's queue and worker; translations run on ``executor`` (one thread for all models,
    so that two batches never fight over the same cores)."""

    def __init__(
        self, translator: Translator, executor: Executor, wait_ms: float, batch_words: int, queue_limit: int
    ) -> None:
        self.translator, self.executor = translator, executor
        self.wait_s, self.batch_words, self.queue_limit = wait_ms / 1000, batch_words, queue_limit
        self.queue: deque[_Job] = deque()
        self.waiting = 0  # sentences in the queue
        self.arrived: asyncio.Event | None = None
        self.batches = self.sentences = 0  # served so far (for /models)

    async def translate(
        self, lines: list[str], settings: Settings = Settings(), constraints: list[list[str]] | None = None
    ) -> list[Translation]:
        """Queue ``lines`` (with each line's target terms, if any) and wait for their
        translations (raises QueueFull at once if full)."""
        if self.arrived is None:
            raise RuntimeError("the batcher is not running")
        if self.waiting + len(lines) > self.queue_limit:
            raise QueueFull
        words = sum(len(s.split()) + 1 for s in lines)
        job = _Job(lines, asyncio.get_running_loop().create_future(), words, settings, constraints)
        self.queue.append(job)
        self.waiting += len(lines)
        self.arrived.set()
        try:
            return await job.future
        except asyncio.CancelledError:  # the request gave up (timeout, client gone)
            job.future.cancel()
            raise

    async def run(self) -> None:
        """The worker: forever take a batch, translate it, answer its requests."""
        self.arrived = asyncio.Event()
        while True:
            await self.arrived.wait()
            self.arrived.clear()
            if self._queued_words() < self.batch_words:
                await asyncio.sleep(self.wait_s)  # let the requests that arrive together join
            batch = self._take()
            if batch:
                await self._serve(batch)
            if self.queue:  # whatever happened to this batch, the next one goes on
                self.arrived.set()

    async def _serve(self, batch: list[_Job]) -> None:
        """Translate a batch and answer each of its requests. If the batch fails, its requests
        are translated again one by one, so that only the request that fails gets the error."""
        lines = [s for job in batch for s in job.lines]
        settings = batch[0].settings  # the same for the whole batch (_take)
        terms = None
        if any(job.constraints for job in batch):
            terms = [c for job in batch for c in (job.constraints or [[] for _ in job.lines])]
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(
                self.executor,
                partial(
                    self.translator.translate_detailed,
                    lines,
                    search=settings.search(self.translator.cfg),
                    with_attention=settings.attention,
                    constraints=terms,
                    ordered=settings.ordered,
                ),
            )
        except Exception as e:  # noqa: BLE001 - the requests learn of it, the server goes on
            if len(batch) > 1:
                log.warning("a batch of %d requests failed (%s): translating them one by one", len(batch), e)
                for job in batch:
                    if not job.future.done():
                        await self._serve([job])
                return
            log.exception("translating a request of %d sentences failed", len(lines))
            if not batch[0].future.done():
                batch[0].future.set_exception(e)
            return
        self.batches += 1
        self.sentences += len(lines)
        start = 0
        for job in batch:
            if not job.future.done():
                job.future.set_result(results[start : start + len(job.lines)])
            start += len(job.lines)

    def _queued_words(self) -> int:
        return sum(job.words for job in self.queue)

    def _take(self) -> list[_Job]:
        """The oldest job and the jobs after it that ask for the same settings, up to the word
        budget (at least one), skipping abandoned ones; the others keep their place."""
        batch, words, kept = [], 0, deque()
        while self.queue:
            job = self.queue.popleft()
            if job.future.done():  # cancelled while waiting
                self.waiting -= len(job.lines)
                continue
            if batch and (job.settings != batch[0].settings or words + job.words > self.batch_words):
                kept.append(job)
                if words + job.words > self.batch_words:
                    break
                continue
            self.waiting -= len(job.lines)
            batch.append(job)
            words += job.words
        kept.extend(self.queue)
        self.queue = kept
        return batch
