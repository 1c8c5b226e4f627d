"""Workflow entry points: a benchmark's completions written for step 4, then scored
with an experiment's ensemble.

Step 4 embeds rows of one prompt and K = 2 responses, so an item's completions are
packed two to a row (its prompt on each of its rows; an odd count repeats its last
completion, whose second embedding is never read). ``{split}_pairs.jsonl`` rows:
``item``, ``subset``, ``prompt``, ``responses`` (2), ``used`` (1 or 2 real ones),
``n_correct`` (on the item's first row), ``row`` (the item's row number).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np

from embrm.data.arrays import open_array
from embrm.evaluate.benchmarks.figure import plot_benchmark
from embrm.evaluate.benchmarks.layouts import read_benchmark
from embrm.evaluate.benchmarks.rewardbench import Item
from embrm.evaluate.benchmarks.scores import score_heads
from embrm.io.atomic import atomic_path
from embrm.io.errors import InputError
from embrm.io.jsonio import read_jsonl, write_json, write_jsonl
from embrm.rm.ensemble import load_ensemble
from embrm.rm.precision import resolve
from embrm.rm.scoring import score_array

K = 2  # responses per row, as step 4 and the canonical arrays need
BOOTSTRAP = 1000  # resamples behind each 95 % interval


def packed_rows(items: list[Item]) -> list[dict]:
    """Each item's completions, two to a row (see the module docstring)."""
    rows = []
    for it in items:
        comp = list(it.completions)
        for r, start in enumerate(range(0, len(comp), K)):
            part = comp[start : start + K]
            rows.append(
                {
                    "item": it.id,
                    "subset": it.subset,
                    "prompt": it.prompt,
                    "responses": part + [part[-1]] * (K - len(part)),
                    "used": len(part),
                    "row": r,
                    **({"n_correct": it.n_correct} if r == 0 else {}),
                }
            )
    return rows


def unpacked(rows: list[dict]) -> tuple[list[Item], np.ndarray]:
    """The items of packed ``rows`` and the flat index ``(T,)`` of their completions in
    a ``(rows * K,)`` array of the rows' responses."""
    items, take = [], []
    for i, row in enumerate(rows):
        if row["row"] == 0:
            items.append(Item(row["item"], row["subset"], row["prompt"], (), int(row["n_correct"])))
        comps = items[-1].completions + tuple(row["responses"][: row["used"]])
        items[-1] = replace(items[-1], completions=comps)
        take.extend(i * K + j for j in range(row["used"]))
    return items, np.array(take, dtype=np.int64)


def prepare_benchmark(*, source: str, layout: str, split, pairs, report) -> dict:
    """Read and check a benchmark (:func:`read_benchmark`) and write its packed rows
    ``pairs`` and a ``report`` (items and completions per subset)."""
    items = read_benchmark(source, layout, split)
    rows = packed_rows(items)
    write_jsonl(pairs, rows)
    summary = {
        "source": source,
        "layout": layout,
        "items": len(items),
        "completions": sum(len(it.completions) for it in items),
        "rows": len(rows),
        "subsets": dict(Counter(it.subset for it in items)),
    }
    write_json(report, summary)
    return summary


def table(result: dict) -> str:
    """A Markdown table: one row per head, overall [95 % interval] and its parts."""
    heads = result["heads"]
    part = "sections" if result["layout"] == "v1" else "subsets"
    names = list(heads["mean"][part])
    lines = [
        f"# {result['benchmark']} (RewardBench {result['layout']}, {result['items']} items)",
        "",
        "| head | overall [95 % CI] | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for head, h in heads.items():
        lo, hi = h["ci95"]["overall"]
        cells = [f"{h[part][n]:.3f}" if n in h[part] else "" for n in names]
        lines.append(
            f"| {head} | {h['overall']:.3f} [{lo:.3f}, {hi:.3f}] | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines) + "\n"


def evaluate_benchmark(
    *,
    ckpt,
    embeddings,
    pairs,
    results,
    table_md,
    figure,
    name: str,
    layout: str,
    lambdas=(),
    bootstrap: int = BOOTSTRAP,
    seed: int,
    chunk_prompts: int,
    precision: str = "fp32",
) -> dict:
    """Score a prepared benchmark with the ensemble ``ckpt``: ``embeddings``
    ``(rows, 2, D)`` of the packed ``pairs``; writes ``results`` (JSON: every head's
    scores and intervals), ``table_md`` and ``figure``."""
    rows = read_jsonl(pairs)
    emb = open_array(embeddings, 3)
    if emb.shape[:2] != (len(rows), K):
        raise InputError(
            f"{embeddings}: shape {emb.shape} does not match the {len(rows)} rows of {pairs}"
        )
    items, take = unpacked(rows)
    model, payload = load_ensemble(ckpt, input_dim=emb.shape[-1])
    scores = score_array(model, emb, chunk_prompts, resolve(precision))
    member_scores = scores.reshape(-1, scores.shape[-1])[take]
    out = {
        "benchmark": name,
        "layout": layout,
        "items": len(items),
        "completions": len(take),
        "members": len(payload["members"]),
        "bootstrap": bootstrap,
        "heads": score_heads(
            items, member_scores, layout=layout, lambdas=lambdas, bootstrap=bootstrap, seed=seed
        ),
    }
    write_json(results, out)
    with atomic_path(table_md) as tmp:
        tmp.write_text(table(out))
    plot_benchmark(out, figure)
    return out
