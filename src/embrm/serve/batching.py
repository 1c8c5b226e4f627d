"""Dynamic batching: concurrent requests' texts scored in one embedder call.

Requests wait in a bounded queue; one worker takes the first, gathers whatever else
arrives within ``max_wait_s`` (up to ``max_batch`` texts), scores them together in a
single worker thread (so the model is never entered twice at once) and hands each
request its slice. While a batch runs, new requests queue up and form the next batch.
A failed batch fails its requests, never the worker.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """The server holds ``max_queue`` requests already: the client should retry."""


@dataclass
class _Request:
    texts: list[str]
    future: asyncio.Future = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class DynamicBatcher:
    """``score_fn(texts) -> (rewards (B,), spread (B,))`` behind an async queue."""

    def __init__(self, score_fn, *, max_batch: int, max_wait_s: float, max_queue: int):
        self.score_fn = score_fn
        self.max_batch, self.max_wait_s = max_batch, max_wait_s
        self.queue: asyncio.Queue[_Request] = asyncio.Queue(maxsize=max_queue)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embrm-score")
        self.batches = 0

    async def submit(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        request = _Request(texts)
        try:
            self.queue.put_nowait(request)
        except asyncio.QueueFull:
            raise QueueFull(f"{self.queue.maxsize} requests are queued already") from None
        return await request.future

    async def _gather(self) -> list[_Request]:
        batch = [await self.queue.get()]
        size = len(batch[0].texts)
        deadline = asyncio.get_running_loop().time() + self.max_wait_s
        while size < self.max_batch:
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                item = (
                    self.queue.get_nowait()
                    if remaining <= 0
                    else await asyncio.wait_for(self.queue.get(), remaining)
                )
            except (asyncio.QueueEmpty, asyncio.TimeoutError):
                break
            batch.append(item)
            size += len(item.texts)
        return batch

    async def run(self) -> None:
        """The worker loop; runs until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            texts = [t for item in batch for t in item.texts]
            try:
                rewards, spread = await loop.run_in_executor(self.executor, self.score_fn, texts)
            except Exception as exc:  # a bad batch fails its requests, not the server
                log.exception("scoring %d texts failed", len(texts))
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
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
