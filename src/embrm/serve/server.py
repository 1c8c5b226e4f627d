"""HTTP server: OpenRLHF's remote reward-model protocol on FastAPI + uvicorn.

``POST /get_reward`` takes ``{"query": [str], "prompts": [str], "labels": [...]}``
(query = prompt + response as the trainer decoded it, in HH or a chat template's form)
and answers ``{"rewards": [float], "scores": [float in 0-1], "extra_logs": {name:
[float]}}`` (a multi-objective bundle logs each attribute's rating and weight,
:func:`embrm.serve.gated.extra_logs`); ``GET /health`` reports readiness and counters.
Every error is JSON ``{"error": ...}``: 400 not JSON, 401 token missing or wrong, 413
too large, 422 wrong fields, types or texts (with ``field`` and ``index``), 503 queue
full (with ``Retry-After``), 500 scoring failed (that request only).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, StrictStr, ValidationError
from starlette.exceptions import HTTPException

from embrm.serve.batching import DynamicBatcher, QueueFull
from embrm.serve.gated import extra_logs
from embrm.serve.texts import BadText, check_texts

log = logging.getLogger(__name__)
access = logging.getLogger("embrm.access")
EXPECTED = "expected {'query': [str], 'prompts': [str], 'labels': [...]}"


@dataclass(frozen=True)
class Limits:
    """Bounds that keep one client from exhausting the server. The defaults take
    OpenRLHF <= 0.9's whole rollout batch in one request (up to 4096 queries) and 4096
    concurrent one-sample requests of OpenRLHF 0.11."""

    max_body_bytes: int = 64_000_000
    max_texts: int = 4096  # queries per request
    max_chars: int = 32_000  # characters per query
    max_queue: int = 4096  # requests waiting for the model
    max_batch: int = 256  # texts per model call
    max_wait_ms: float = 5.0  # how long a batch waits for requests still being read


class RewardRequest(BaseModel):
    query: list[StrictStr]
    prompts: list[StrictStr] | None = None
    labels: list[Any] | None = None


def error(status: int, message: str, headers: dict | None = None, **extra) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


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


async def disconnected(request: Request) -> None:
    """Returns once the client has closed the connection (the body is read by then)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def authorised(request: Request, token: str | None) -> bool:
    """``Authorization: Bearer <token>`` or ``?token=<token>`` (for clients such as
    OpenRLHF that only take a URL); always true without a token."""
    if token is None:
        return True
    header = request.headers.get("authorization", "")
    given = header[7:] if header[:7].lower() == "bearer " else request.query_params.get("token")
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def parse(body: bytes, limits: Limits) -> RewardRequest | JSONResponse:
    """The request, or the 4xx answer that names what is wrong with it."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return error(400, f"body is not valid JSON: {exc}")
    except RecursionError:
        return error(400, "body is not valid JSON: nested too deeply")
    try:
        req = RewardRequest.model_validate(data)
    except ValidationError as exc:
        fields = [
            {"field": ".".join(map(str, e["loc"])), "problem": e["msg"]} for e in exc.errors()
        ]
        return error(422, EXPECTED, fields=fields)
    n = len(req.query)
    if n > limits.max_texts:
        return error(413, f"{n} queries in one request; at most {limits.max_texts}")
    if req.prompts is not None and len(req.prompts) != n:
        return error(422, f"{n} queries but {len(req.prompts)} prompts", field="prompts")
    for name, texts in (("query", req.query), ("prompts", req.prompts or [])):
        long = next((i for i, t in enumerate(texts) if len(t) > limits.max_chars), None)
        if long is not None:
            return error(
                413, f"{name}[{long}] exceeds {limits.max_chars} characters", field=name, index=long
            )
        try:
            check_texts(texts, name)
        except BadText as exc:
            return error(422, str(exc), field=exc.field, index=exc.index)
    return req


def create_app(model, limits: Limits = Limits(), token: str | None = None) -> FastAPI:
    """The ASGI app around a loaded :class:`~embrm.serve.model.RewardModel` or
    :class:`~embrm.serve.process.ModelProcesses` (whose ``workers`` score batches at
    once); with ``token``, ``/get_reward`` needs it (see :func:`authorised`)."""
    batcher = DynamicBatcher(
        model.rewards_and_spread,
        max_batch=limits.max_batch,
        max_wait_s=limits.max_wait_ms / 1000,
        max_queue=limits.max_queue,
        workers=getattr(model, "workers", 1),
    )
    lo, hi = model.golden_range

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        worker = asyncio.create_task(batcher.run())
        yield
        worker.cancel()
        batcher.close()

    app = FastAPI(title="embrm reward model", lifespan=lifespan)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return error(exc.status_code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception):
        log.exception("unhandled error on %s", request.url.path)
        return error(500, f"internal error: {type(exc).__name__}")

    @app.get("/health")
    async def health():
        return {
            "status": "ok" if getattr(model, "live", 1) else "no model process left",
            "head": model.head,
            "conservative": model.conservative,
            "embedder": model.config["embedder"]["name"],
            "device": str(model.device),
            "dtype": str(model.dtype).removeprefix("torch."),
            "model_processes": getattr(model, "live", "in process"),
            "queued": batcher.queued_requests(),
            "batches": batcher.batches,
            "texts_scored": batcher.texts_scored,
            "dropped_disconnected": batcher.dropped,
            "failed_requests": batcher.failed,
            "formats": {str(k): v for k, v in model.formats_seen.items()},
        }

    async def answer(request: Request) -> tuple[JSONResponse, int]:
        """The response to one ``/get_reward`` request and its number of queries."""
        if not authorised(request, token):
            return error(401, "missing or wrong token", {"WWW-Authenticate": "Bearer"}), 0
        with batcher.arriving():
            body = await read_body(request, limits.max_body_bytes)
            if body is None:
                return error(413, f"request body exceeds {limits.max_body_bytes} bytes"), 0
            req = parse(body, limits)
            if isinstance(req, JSONResponse):
                return req, 0
            texts, names, split = model.reader.queries(req.query, req.prompts)
            model.formats_seen.add(names)
        if not texts:  # OpenRLHF sends empty shards to all but one of several servers
            logs = {
                **extra_logs(model.config, np.zeros((0, 0))),
                "split_at_prompt": [],
                "unrecognised_format": [],
            }
            return JSONResponse({"rewards": [], "scores": [], "extra_logs": logs}), 0
        scoring = asyncio.ensure_future(batcher.submit(texts))
        gone = asyncio.ensure_future(disconnected(request))
        await asyncio.wait((scoring, gone), return_when=asyncio.FIRST_COMPLETED)
        if not scoring.done():  # the client closed the connection: drop its request
            scoring.cancel()
            return error(499, "client closed the connection"), len(texts)
        gone.cancel()
        try:
            rewards, spread = scoring.result()
        except QueueFull as exc:
            headers = {"Retry-After": str(exc.retry_after)}
            return error(503, f"server busy: {exc}; retry", headers), len(texts)
        except Exception as exc:
            return error(500, f"scoring failed: {type(exc).__name__}: {exc}"), len(texts)
        scores = np.clip((rewards - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
        unknown = [float(n is None) for n in names]
        body = {
            "rewards": rewards.tolist(),
            "scores": scores.tolist(),
            "extra_logs": {
                **extra_logs(model.config, spread),
                "split_at_prompt": split,
                "unrecognised_format": unknown,
            },
        }
        return JSONResponse(body), len(texts)

    @app.post("/get_reward")
    async def get_reward(request: Request):
        start = time.perf_counter()
        response, n = await answer(request)
        if access.isEnabledFor(logging.INFO):
            client = request.client
            access.info(
                '%s "POST /get_reward" %d %d texts %.1f ms',
                f"{client.host}:{client.port}" if client else "-",
                response.status_code,
                n,
                1000 * (time.perf_counter() - start),
            )
        return response

    return app
