"""The baseline `bench_serve.py` compares `embrm serve` with: a plain per-request server.

FastAPI with a synchronous endpoint, so Starlette runs each request in its thread pool,
and each request calls ``RewardModel`` on its own texts (no queue, no batching across
requests); same protocol and the same text reading as `embrm serve`. Usage:

    python bench/plain_serve.py BUNDLE --port 8001
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import uvicorn
from fastapi import FastAPI

from embrm import RewardModel


def create_plain_app(rm: RewardModel) -> FastAPI:
    app = FastAPI()
    lo, hi = rm.golden_range

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.post("/get_reward")
    def get_reward(body: dict):
        texts, names, split = rm.reader.queries(body["query"], body.get("prompts"))
        rewards, spread = rm.rewards_and_spread(texts)
        scores = np.clip((rewards - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
        return {
            "rewards": rewards.tolist(),
            "scores": scores.tolist(),
            "extra_logs": {"ensemble_std": spread.tolist(), "split_at_prompt": split},
        }

    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle")
    ap.add_argument("--port", type=int, default=8001)
    args = ap.parse_args()
    app = create_plain_app(RewardModel.from_pretrained(args.bundle))
    print(json.dumps({"plain server": args.port}), flush=True)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
