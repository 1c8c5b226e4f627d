"""Rated responses as the preference pairs of the ORM ensemble (``data.pairs.from_ratings``).

The pairs of each split are derived from that split of ``data.ratings`` (prepared by
:func:`embrm.data.ratings.prepare_ratings`, so the split keeps every prompt on one side)
by the gating's recipe (:mod:`embrm.multi_objective.rating_pairs`: ``best_vs_random``
or ``all_pairs`` of the preference values, ties dropped), and written as any other pair
source (:func:`embrm.data.preferences.write_pair_splits`). Each pair's ``margin`` is
its preference gap, so ``orm.margin_source: given`` trains the ensemble with Llama 2's
rating-gap margin; the adaptive margin and the noise remedies work on them as on any
human pairs.
"""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np

from embrm.data.preferences import SPLITS, write_pair_splits
from embrm.data.texts import plain_text
from embrm.io.errors import InputError
from embrm.io.jsonio import read_jsonl, write_json
from embrm.multi_objective.rating_pairs import rating_pairs
from embrm.rm.pairs import margin_summary

log = logging.getLogger(__name__)


def rated_pair_records(rows: list[dict], *, recipe: str, seed: int, counts: Counter) -> list[dict]:
    """Pairs ``{id, prompt, chosen, rejected, margin}`` of one split's rated responses
    (rows of ``{split}_ratings.jsonl``: ``id``, ``prompt``, ``responses`` ``["",
    response]``, ``preference``); ``margin`` is the chosen response's preference lead.
    Two responses with the same text but different ratings contradict each other: such a
    pair is dropped and counted in ``counts["dropped_identical"]``."""
    if not rows:
        return []
    preference = np.array([r["preference"] for r in rows], dtype=np.float64)
    group = np.unique([r["prompt"] for r in rows], return_inverse=True)[1]
    pairs, margin, made = rating_pairs(preference, group, recipe=recipe, seed=seed)
    counts.update({k: v for k, v in made.items() if k != "pairs"})
    out = []
    for win, lose, gap in zip(pairs.first, pairs.second, margin):
        chosen, rejected = rows[win], rows[lose]
        prompt = chosen["prompt"]
        if plain_text(prompt, chosen["responses"][1]) == plain_text(
            prompt, rejected["responses"][1]
        ):
            counts["dropped_identical"] += 1
            continue
        out.append(
            {
                "id": f"{chosen['id']}>{rejected['id']}",
                "prompt": prompt,
                "chosen": chosen["responses"][1],
                "rejected": rejected["responses"][1],
                "margin": float(gap),
            }
        )
    return out


def prepare_rating_pairs(
    *, ratings: dict, cfg: dict, out_pairs: dict, out_preferences: dict, report
) -> dict:
    """The pairs of ``data.pairs`` (``cfg``, with ``from_ratings`` and the ``data.ratings``
    section under ``cfg["ratings"]``) derived from the prepared rated responses
    ``ratings`` (split -> ``{split}_ratings.jsonl``). ``data.pairs.seed`` draws the
    ``best_vs_random`` losers and the column order; ``max_pairs`` keeps each split's
    first pairs. Writes the files of :func:`embrm.data.preferences.prepare_pairs` and a
    report with the recipe and the counts."""
    recipe = cfg["ratings"]["pair_recipe"]
    counts = Counter()
    splits = {}
    for split in SPLITS:
        rows = read_jsonl(ratings[split])
        pairs = rated_pair_records(rows, recipe=recipe, seed=cfg["seed"], counts=counts)
        if not pairs:
            raise InputError(
                f"{ratings[split]}: the {split} split gives no pair by data.ratings.pair_recipe "
                f"{recipe!r} (every prompt's responses are rated the same: "
                f"{dict(counts)}); the ORM ensemble needs pairs on both splits"
            )
        splits[split] = pairs[: cfg["max_pairs"]] if cfg["max_pairs"] else pairs
    summary = {
        "source": f"data.ratings {cfg['ratings']['name']} ({cfg['ratings']['source']})",
        "pair_recipe": recipe,
        "preference": cfg["ratings"]["preference"] or "mean of the attributes",
        "dropped_identical": counts["dropped_identical"],
        "ties_dropped": counts["ties_dropped"],
        "prompts_without_pair": counts["prompts_without_pair"],
        "splits": write_pair_splits(
            splits, seed=cfg["seed"], out_pairs=out_pairs, out_preferences=out_preferences
        ),
    }
    for split, pairs in splits.items():
        summary["splits"][split]["margin"] = margin_summary(np.array([p["margin"] for p in pairs]))
    if summary["dropped_identical"]:
        log.warning(
            "%d pairs of identical texts rated differently dropped", counts["dropped_identical"]
        )
    write_json(report, summary)
    return summary
