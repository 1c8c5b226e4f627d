"""The ``embrm`` command: ``embrm serve DIR``, ``embrm score DIR --input FILE`` and
``embrm score DIR --benchmark FILE_OR_ID --layout v1|v2``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np

from embrm.io.errors import InputError
from embrm.io.jsonio import write_jsonl
from embrm.serve.bundle import HEADS
from embrm.serve.model import DTYPE_CHOICES
from embrm.serve.server import Limits
from embrm.serve.texts import BadText, check_texts

log = logging.getLogger("embrm.serve")
TOKEN_ENV = "EMBRM_TOKEN"
LIMIT_HELP = {
    "max_body_bytes": "largest request body",
    "max_texts": "queries per request (OpenRLHF <= 0.9 sends its rollout batch in one)",
    "max_chars": "characters per query",
    "max_queue": "requests waiting for the model (OpenRLHF 0.11: one per rollout)",
    "max_batch": "texts per model call",
    "max_wait_ms": "how long a batch waits for requests the server is still reading",
}


def _options(args) -> dict:
    """:meth:`RewardModel.from_pretrained`'s keywords from the command line."""
    return {
        "head": args.head,
        "conservative": args.conservative,
        "batch_size": args.batch_size,
        "device": args.device,
        "dtype": args.dtype,
    }


def processes_and_threads(device: str | None, workers: int | None, threads: int | None):
    """Model processes and torch threads each: on a CPU one process per CPU with one
    thread (a small embedder's forward is mostly Python, bound by its process's GIL, so
    processes scale where threads do not); on a GPU one process with the CPUs' threads."""
    import torch

    cpus = len(os.sched_getaffinity(0))
    gpu = device.startswith("cuda") if device else torch.cuda.is_available()
    workers = workers or (1 if gpu else cpus)
    return workers, threads or max(1, cpus // workers)


def serve(args) -> None:
    import uvicorn

    from embrm.serve.process import ModelProcesses
    from embrm.serve.server import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("embrm.access").setLevel(logging.INFO if args.access_log else logging.WARNING)
    token = args.token or os.environ.get(TOKEN_ENV) or None
    limits = Limits(**{f.name: getattr(args, f.name) for f in fields(Limits)})
    workers, threads = processes_and_threads(args.device, args.workers, args.threads)
    model = ModelProcesses(args.bundle, workers=workers, threads=threads, **_options(args))
    log.info(
        "serving %s (head %s, %s, %s, %d model processes of %d torch threads) on "
        "http://%s:%d/get_reward; %s; limits %s",
        args.bundle,
        model.head,
        model.device,
        model.dtype,
        workers,
        threads,
        args.host,
        args.port,
        "token required" if token else "no authentication",
        ", ".join(f"{f.name}={getattr(limits, f.name)}" for f in fields(Limits)),
    )
    if not token and args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening on %s without a token: anyone who reaches it can use it", args.host)
    try:
        uvicorn.run(
            create_app(model, limits, token),
            host=args.host,
            port=args.port,
            log_level="warning",
            access_log=False,
        )
    finally:
        model.close()


def read_rows(path: Path) -> tuple[list[dict], list[int]]:
    """The JSONL rows of ``path`` and the line each came from (blank lines skipped);
    a line that is not a JSON object is named."""
    rows, lines = [], []
    with path.open() as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise InputError(f"{path}:{number}: not valid JSON: {exc}") from None
            if not isinstance(row, dict):
                raise InputError(
                    f"{path}:{number}: expected a JSON object, got {type(row).__name__}"
                )
            rows.append(row)
            lines.append(number)
    if not rows:
        raise InputError(f"{path}: no rows")
    return rows, lines


def check_rows(rows: list[dict], lines: list[int], source) -> tuple[str, ...]:
    """The fields every row must have (from the first row: a response, or a pair),
    checked on every row before anything is scored; a bad row is named by its line."""
    pairs = "chosen" in rows[0]
    needed = ("prompt", "chosen", "rejected") if pairs else ("prompt", "response")
    for row, line in zip(rows, lines):
        missing = [f for f in needed if f not in row]
        if missing:
            raise InputError(
                f"{source}:{line}: missing {missing}; rows need prompt and response, or "
                "prompt, chosen and rejected (the kind of the first row)"
            )
        try:
            check_texts([row[f] for f in needed], "fields")
        except BadText as exc:
            raise InputError(
                f"{source}:{line}: field {needed[exc.index]!r}: {exc.problem}"
            ) from None
    return needed[1:]


def score_rows(model, rows: list[dict], chunk: int, fields=("response",)):
    """Each row with its reward(s) added, and the pair accuracy for chosen/rejected rows
    (a tie counts as wrong, as in RewardBench)."""
    from tqdm import tqdm

    out = [dict(r) for r in rows]
    with tqdm(total=len(rows) * len(fields), unit="text", file=sys.stderr) as bar:
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            for f in fields:
                rewards = model.score([r["prompt"] for r in part], [r[f] for r in part])
                for row, reward in zip(out[start : start + chunk], rewards):
                    row["reward" if f == "response" else f"reward_{f}"] = reward
                bar.update(len(part))
    if "chosen" not in fields:
        return out, None
    return out, float(np.mean([r["reward_chosen"] > r["reward_rejected"] for r in out]))


def score(args) -> None:
    if args.benchmark is not None:
        return score_benchmark(args)
    rows, lines = read_rows(args.input)
    scored = check_rows(rows, lines, args.input)
    from embrm.serve.model import RewardModel

    model = RewardModel.from_pretrained(args.bundle, **_options(args))
    out, accuracy = score_rows(model, rows, chunk=8 * model.embed_cfg["batch_size"], fields=scored)
    if args.output:
        write_jsonl(args.output, out)
    else:
        for row in out:
            sys.stdout.write(json.dumps(row) + "\n")
    unknown = model.formats_seen[None]
    if unknown:
        print(f"{unknown} texts in no known format were scored as given", file=sys.stderr)
    if accuracy is not None:
        print(f"pair accuracy: {accuracy:.4f} ({len(out)} pairs)", file=sys.stderr)


def score_benchmark(args) -> None:
    """``--benchmark``: the head's benchmark scores as JSON (``--output`` or stdout)."""
    from embrm.evaluate.benchmarks.layouts import read_benchmark
    from embrm.serve.benchmark import score_benchmark
    from embrm.serve.model import RewardModel

    if args.layout is None:
        raise InputError("--benchmark needs --layout v1 (RewardBench) or v2 (RewardBench 2)")
    items = read_benchmark(args.benchmark, args.layout, args.split)  # before the model loads
    model = RewardModel.from_pretrained(args.bundle, **_options(args))
    out = score_benchmark(
        model,
        items=items,
        source=args.benchmark,
        layout=args.layout,
        chunk=8 * model.embed_cfg["batch_size"],
    )
    text = json.dumps(out, indent=1)
    if args.output:
        args.output.write_text(text + "\n")
    else:
        sys.stdout.write(text + "\n")
    lo, hi = out["ci95"]["overall"]
    print(
        f"{args.benchmark} ({args.layout}): overall {out['overall']:.4f} "
        f"[{lo:.4f}, {hi:.4f}] ({out['items']} items)",
        file=sys.stderr,
    )


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
        p.add_argument(
            "--device", default=None, help="cpu, cuda, cuda:1, ... (default: first GPU, else CPU)"
        )
        p.add_argument(
            "--dtype",
            choices=DTYPE_CHOICES,
            default="auto",
            help="embedder dtype (auto: float32 on CPU, bf16/fp16 on GPU); float32 and "
            "bfloat16 also set the heads' precision (auto: the bundle's where this CPU has "
            "native bf16)",
        )
        p.set_defaults(func=globals()[name])
    s = sub.choices["serve"]
    s.add_argument(
        "--host", default="127.0.0.1", help="0.0.0.0 to accept trainers on other machines"
    )
    s.add_argument("--port", type=int, default=8000)
    s.add_argument(
        "--token",
        default=None,
        help=f"require 'Authorization: Bearer TOKEN' or '?token=TOKEN' (or set ${TOKEN_ENV}); "
        "default: no authentication",
    )
    s.add_argument("--access-log", action="store_true", help="log one line per request")
    s.add_argument(
        "--workers",
        type=int,
        default=None,
        help="model processes, each scoring its own batches (default: one per CPU on a "
        "CPU, one on a GPU)",
    )
    s.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads of each model process (default: the CPUs over --workers)",
    )
    for f in fields(Limits):  # --max-body-bytes, --max-texts, ...: the server's bounds
        flag = "--" + f.name.replace("_", "-")
        s.add_argument(flag, type=type(f.default), default=f.default, help=LIMIT_HELP[f.name])
    c = sub.choices["score"]
    what = c.add_mutually_exclusive_group(required=True)
    what.add_argument("--input", type=Path)
    what.add_argument(
        "--benchmark",
        default=None,
        help="a RewardBench v1/v2 file (.jsonl, .json, .parquet) or hub id, scored "
        "by subset, section and overall with 95%% intervals (docs/benchmarks.md)",
    )
    c.add_argument("--layout", choices=("v1", "v2"), default=None, help="with --benchmark")
    c.add_argument(
        "--split", default=None, help="with a --benchmark hub id; default filtered (v1), test (v2)"
    )
    c.add_argument(
        "--output", type=Path, default=None, help="JSONL (--benchmark: JSON); default: stdout"
    )
    return top


def main(argv=None) -> None:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except InputError as exc:
        sys.exit(f"embrm: {exc}")
