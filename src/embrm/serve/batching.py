"""Dynamic batching: concurrent requests' texts scored in one embedder call.

Requests wait in a bounded queue; a free worker takes every request already waiting (up
to ``max_batch`` texts), and if that is fewer, waits up to ``max_wait_s`` for requests
the server is still reading (:meth:`DynamicBatcher.arriving`), then scores them together
in its own thread (one worker by default, so the model is never entered twice at once;
more for a scorer that allows concurrent calls, such as several model processes) and
hands each request its slice. While a batch runs, new requests queue up and form the
next batch. A request of at least ``2 * MIN_PART`` texts is queued as one part per
worker, so one large request keeps every worker busy (one torch thread each) instead of
one.

Isolation: a batch that fails is scored again request by request, so a bad request
fails alone and the others get their rewards. A request whose client has gone (its
awaiting task was cancelled) is dropped before it is scored.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

# texts: a smaller part costs a model process's round trip for little work
MIN_PART = 8


class QueueFull(Exception):
    """The server holds ``max_queue`` requests already: the client should retry after
    ``retry_after`` seconds (the time the queue takes to drain at the recent rate)."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class _Request:
    texts: list[str]
    origin: object  # the client request this is a part of (shared by its parts)
    future: asyncio.Future = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class DynamicBatcher:
    """``score_fn(texts) -> (rewards (B,), spread (B,))`` behind an async queue."""

    def __init__(
        self, score_fn, *, max_batch: int, max_wait_s: float, max_queue: int, workers: int = 1
    ):
        self.score_fn = score_fn
        self.max_batch, self.max_wait_s, self.max_queue = max_batch, max_wait_s, max_queue
        self.waiting: deque[_Request] = deque()
        self.wakeup = asyncio.Event()
        self.workers = workers  # batches scored at once: score_fn must allow that many calls
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="embrm-score")
        self.batches = self.dropped = self.failed = self.texts_scored = 0
        self.reading = 0  # requests whose body is still being read or checked
        self.idle = 0  # workers waiting for requests
        self.seconds_per_text = 1e-3  # moving estimate, for Retry-After

    @contextmanager
    def arriving(self):
        """Around reading and checking a request: the worker may wait for it."""
        self.reading += 1
        try:
            yield
        finally:
            self.reading -= 1

    def queued_texts(self) -> int:
        return sum(len(r.texts) for r in self.waiting)

    def retry_after(self) -> int:
        return max(1, math.ceil(self.queued_texts() * self.seconds_per_text / self.workers))

    def _parts(self, texts: list[str]) -> list[_Request]:
        """``texts`` as up to ``workers`` contiguous parts of at least ``MIN_PART``."""
        n = max(1, min(self.workers, len(texts) // MIN_PART))
        bounds = np.linspace(0, len(texts), n + 1).astype(int)
        origin = object()
        return [_Request(texts[a:b], origin) for a, b in zip(bounds[:-1], bounds[1:])]

    def queued_requests(self) -> int:
        """Client requests with a part still waiting (what ``max_queue`` bounds)."""
        return len({id(p.origin) for p in self.waiting})

    async def submit(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Rewards and spread of ``texts``; cancelling the caller drops the request."""
        if self.queued_requests() >= self.max_queue:
            raise QueueFull(f"{self.max_queue} requests are queued already", self.retry_after())
        parts = self._parts(texts)
        self.waiting.extend(parts)
        self.wakeup.set()
        try:
            results = await asyncio.gather(*(p.future for p in parts), return_exceptions=True)
        except asyncio.CancelledError:  # the client has gone: unqueue what is not yet taken
            queued = [p for p in parts if p in self.waiting]
            for part in queued:
                self.waiting.remove(part)
            self.dropped += bool(queued)
            raise
        failed = next((r for r in results if isinstance(r, BaseException)), None)
        if failed is not None:
            raise failed
        return (np.concatenate([r for r, _ in results]), np.concatenate([s for _, s in results]))

    def _take(self, batch: list[_Request], size: int) -> int:
        """Move waiting requests into ``batch`` up to ``max_batch`` texts, or up to this
        worker's share of the queue while other workers are idle too (they score the
        rest at the same time); the first request whatever its size. Returns the size."""
        share = math.ceil(self.queued_texts() / max(self.idle, 1))
        limit = min(self.max_batch, max(share, 1))
        while self.waiting and (not batch or size + len(self.waiting[0].texts) <= limit):
            request = self.waiting.popleft()
            batch.append(request)
            size += len(request.texts)
        return size

    async def _gather(self) -> list[_Request]:
        batch: list[_Request] = []
        self.idle += 1
        try:
            while not batch:
                self.wakeup.clear()
                if not self.waiting:
                    await self.wakeup.wait()
                size = self._take(batch, 0)
        finally:
            self.idle -= 1
        deadline = time.monotonic() + self.max_wait_s
        while size < self.max_batch and self.reading and time.monotonic() < deadline:
            self.wakeup.clear()
            try:
                await asyncio.wait_for(self.wakeup.wait(), deadline - time.monotonic())
            except asyncio.TimeoutError:
                break
            size = self._take(batch, size)
        return batch

    async def _score(self, loop, texts: list[str]):
        start = time.perf_counter()
        out = await loop.run_in_executor(self.executor, self.score_fn, texts)
        per_text = (time.perf_counter() - start) / max(len(texts), 1)
        self.seconds_per_text = 0.8 * self.seconds_per_text + 0.2 * per_text
        self.texts_scored += len(texts)
        return out

    def _fail(self, item: _Request, exc: Exception) -> None:
        self.failed += 1
        log.error(
            "scoring a request of %d texts failed: %s: %s", len(item.texts), type(exc).__name__, exc
        )
        if not item.future.done():
            item.future.set_exception(exc)

    async def _score_alone(self, loop, batch: list[_Request]) -> None:
        """After a failed batch: each request on its own, so only bad ones fail."""
        for item in batch:
            if item.future.done():
                continue
            try:
                result = await self._score(loop, item.texts)
            except Exception as exc:
                self._fail(item, exc)
                continue
            if not item.future.done():
                item.future.set_result(result)

    async def run(self) -> None:
        """The workers' loops; runs until cancelled."""
        await asyncio.gather(*(self._work() for _ in range(self.workers)))

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            texts = [t for item in batch for t in item.texts]
            try:
                rewards, spread = await self._score(loop, texts)
            except Exception as exc:
                if len(batch) == 1:
                    self._fail(batch[0], exc)
                else:
                    log.warning(
                        "a batch of %d requests failed; scoring them one by one", len(batch)
                    )
                    await self._score_alone(loop, batch)
                continue
            self.batches += 1
            start = 0
            for item in batch:
                end = start + len(item.texts)
                if not item.future.done():  # the client may have gone
                    item.future.set_result((rewards[start:end], spread[start:end]))
                start = end

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
