"""Dynamic batching: the sentences of concurrent requests in, one translation call out.

A request's sentences wait in a queue; a worker takes what arrived within a short window
(``wait_ms``) up to a budget of source words, translates it in one call on the translation thread,
and hands every request its own results. So throughput grows with concurrency (a batch of 64
sentences costs little more than one on a CPU, less still on a GPU) while a lone request waits
only the window. A batch that fails is translated again request by request, so the requests that
shared it with a failing sentence still get their own results. A full queue refuses new work at once (``QueueFull``: the server answers 503),
and a request that gave up (its timeout) is dropped from the queue before it costs anything.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass, field

from nmt.translator import Translation, Translator

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """More sentences are waiting than the queue allows."""


@dataclass
class _Job:
    lines: list[str]
    future: asyncio.Future
    words: int
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

    async def translate(self, lines: list[str]) -> list[Translation]:
        """Queue ``lines`` and wait for their translations (raises QueueFull at once if full)."""
        if self.arrived is None:
            raise RuntimeError("the batcher is not running")
        if self.waiting + len(lines) > self.queue_limit:
            raise QueueFull
        job = _Job(lines, asyncio.get_running_loop().create_future(), sum(len(s.split()) + 1 for s in lines))
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
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self.executor, self.translator.translate_detailed, lines)
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
        """The oldest jobs up to the word budget (at least one), skipping abandoned ones."""
        batch, words = [], 0
        while self.queue:
            job = self.queue[0]
            if job.future.done():  # cancelled while waiting
                self.queue.popleft()
                self.waiting -= len(job.lines)
                continue
            if batch and words + job.words > self.batch_words:
                break
            self.queue.popleft()
            self.waiting -= len(job.lines)
            batch.append(job)
            words += job.words
        return batch
