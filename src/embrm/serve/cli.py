"""The ``embrm`` command: ``embrm serve DIR`` and ``embrm score DIR --input FILE``."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np

from embrm.io.errors import InputError
from embrm.io.jsonio import read_jsonl, write_jsonl
from embrm.serve.bundle import HEADS
from embrm.serve.server import Limits

LIMIT_HELP = {
    "max_body_bytes": "largest request body",
    "max_texts": "queries per request",
    "max_chars": "characters per query",
    "max_queue": "requests waiting for the model",
    "max_batch": "texts per model call",
    "max_wait_ms": "batching window in milliseconds",
}


def _model(args):
    from embrm.serve.model import RewardModel

    return RewardModel.from_pretrained(
        args.bundle, head=args.head, conservative=args.conservative, batch_size=args.batch_size
    )


def serve(args) -> None:
    import uvicorn

    from embrm.serve.server import create_app

    limits = Limits(**{f.name: getattr(args, f.name) for f in fields(Limits)})
    uvicorn.run(
        create_app(_model(args), limits), host=args.host, port=args.port, log_level="warning"
    )


def score_rows(model, rows: list[dict], chunk: int) -> tuple[list[dict], float | None]:
    """Each row with its reward(s) added, and the pair accuracy for chosen/rejected rows
    (a tie counts as wrong, as in RewardBench)."""
    from tqdm import tqdm

    pairs = "chosen" in rows[0]
    fields = ("chosen", "rejected") if pairs else ("response",)
    missing = [f for f in ("prompt", *fields) if f not in rows[0]]
    if missing:
        raise InputError(
            f"rows need prompt and response, or prompt, chosen and rejected: {missing}"
        )
    out = [dict(r) for r in rows]
    with tqdm(total=len(rows) * len(fields), unit="text", file=sys.stderr) as bar:
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            for f in fields:
                rewards = model.score([r["prompt"] for r in part], [r[f] for r in part])
                for row, reward in zip(out[start : start + chunk], rewards):
                    row["reward" if f == "response" else f"reward_{f}"] = reward
                bar.update(len(part))
    if not pairs:
        return out, None
    return out, float(np.mean([r["reward_chosen"] > r["reward_rejected"] for r in out]))


def score(args) -> None:
    rows = read_jsonl(args.input)
    if not rows:
        raise InputError(f"{args.input}: no rows")
    model = _model(args)
    out, accuracy = score_rows(model, rows, chunk=8 * model.embed_cfg["batch_size"])
    if args.output:
        write_jsonl(args.output, out)
    else:
        for row in out:
            sys.stdout.write(json.dumps(row) + "\n")
    if accuracy is not None:
        print(f"pair accuracy: {accuracy:.4f} ({len(out)} pairs)", file=sys.stderr)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="embrm", description="Use an embrm reward-model bundle.")
    sub = top.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("serve", "serve OpenRLHF's remote reward-model API over HTTP"),
        ("score", "score a JSONL file of {prompt, response} or {prompt, chosen, rejected}"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("bundle", type=Path, help="the reward_model folder of a run")
        p.add_argument("--head", choices=HEADS, default=None, help="default: the bundle's")
        p.add_argument(
            "--conservative",
            type=float,
            default=0.0,
            help="lambda of reward - lambda * ensemble std",
        )
        p.add_argument("--batch-size", type=int, default=None, help="texts per embedder pass")
        p.set_defaults(func=globals()[name])
    s = sub.choices["serve"]
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    for f in fields(Limits):  # --max-body-bytes, --max-texts, ...: the server's bounds
        flag = "--" + f.name.replace("_", "-")
        s.add_argument(flag, type=type(f.default), default=f.default, help=LIMIT_HELP[f.name])
    c = sub.choices["score"]
    c.add_argument("--input", type=Path, required=True)
    c.add_argument("--output", type=Path, default=None, help="JSONL; default: stdout")
    return top


def main(argv=None) -> None:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except InputError as exc:
        sys.exit(f"embrm: {exc}")
