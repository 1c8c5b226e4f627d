"""HTTP server: OpenRLHF's remote reward-model protocol on FastAPI + uvicorn.

``POST /get_reward`` takes ``{"query": [str], "prompts": [str], "labels": [...]}``
(query = prompt + response as the trainer decoded it) and answers
``{"rewards": [float], "scores": [float in 0-1], "extra_logs": {name: [float]}}``;
``GET /health`` reports readiness. Bad requests get a 4xx JSON ``{"error": ...}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, StrictStr, ValidationError

from embrm.serve.batching import DynamicBatcher, QueueFull
from embrm.serve.texts import query_texts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """Bounds that keep one client from exhausting the server."""

    max_body_bytes: int = 4_000_000
    max_texts: int = 256  # queries per request
    max_chars: int = 32_000  # characters per query
    max_queue: int = 1024  # requests waiting for the model
    max_batch: int = 64  # texts per model call
    max_wait_ms: float = 2.0  # how long the first request of a batch waits for company


class RewardRequest(BaseModel):
    query: list[StrictStr]
    prompts: list[StrictStr] | None = None
    labels: list[Any] | None = None


def error(status: int, message: str, **extra) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


async def read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None once it exceeds ``limit`` bytes (checked while streaming)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(model, limits: Limits = Limits()) -> FastAPI:
    """The ASGI app around a loaded :class:`~embrm.serve.model.RewardModel`."""
    batcher = DynamicBatcher(
        model.rewards_and_spread,
        max_batch=limits.max_batch,
        max_wait_s=limits.max_wait_ms / 1000,
        max_queue=limits.max_queue,
    )
    lo, hi = model.heads.golden_range

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        worker = asyncio.create_task(batcher.run())
        yield
        worker.cancel()
        batcher.close()

    app = FastAPI(title="embrm reward model", lifespan=lifespan)

    @app.get("/health")
    async def health():
        return {
            "status": "ok",
            "head": model.head,
            "conservative": model.conservative,
            "embedder": model.config["embedder"]["name"],
            "queued": batcher.queue.qsize(),
            "batches": batcher.batches,
        }

    @app.post("/get_reward")
    async def get_reward(request: Request):
        body = await read_body(request, limits.max_body_bytes)
        if body is None:
            return error(413, f"request body exceeds {limits.max_body_bytes} bytes")
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return error(400, f"body is not valid JSON: {exc}")
        try:
            req = RewardRequest.model_validate(data)
        except ValidationError as exc:
            fields = [
                {"field": ".".join(map(str, e["loc"])), "problem": e["msg"]} for e in exc.errors()
            ]
            return error(
                422, "expected {'query': [str], 'prompts': [str], 'labels': [...]}", fields=fields
            )
        n = len(req.query)
        if n > limits.max_texts:
            return error(413, f"{n} queries in one request; at most {limits.max_texts}")
        if req.prompts is not None and len(req.prompts) != n:
            return error(422, f"{n} queries but {len(req.prompts)} prompts")
        if any(len(q) > limits.max_chars for q in req.query):
            return error(413, f"a query exceeds {limits.max_chars} characters")
        texts, split = query_texts(req.query, req.prompts)
        try:
            rewards, spread = await batcher.submit(texts)
        except QueueFull as exc:
            return error(503, f"server busy: {exc}; retry")
        except Exception as exc:
            return error(500, f"scoring failed: {type(exc).__name__}: {exc}")
        scores = np.clip((rewards - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
        return {
            "rewards": rewards.tolist(),
            "scores": scores.tolist(),
            "extra_logs": {"ensemble_std": spread.tolist(), "split_at_prompt": split},
        }

    return app
