"""Rated responses (HelpSteer-style attributes, UltraFeedback-style scores) for the
multi-objective heads (``data.source: ratings``); step 4 embeds them like samples.

A record is one response: a ``prompt`` and a ``response`` (strings, or ``[{role,
content}]`` message lists, read as :mod:`embrm.data.preferences` reads them) and
one number per attribute named in ``attributes`` (e.g. HelpSteer's ``helpfulness``,
``correctness``, ``coherence``, ``complexity``, ``verbosity``). A missing or
non-numeric attribute is an error naming the file, the record and the field. Splits
are those of the pairs source: the source's own, or with ``test_fraction`` a seeded
split that keeps every prompt on one side. Per split:

- ``{split}_ratings.jsonl``: per response ``id``, ``prompt``, ``responses`` (``["",
  response]``: step 4 embeds prompt + response text, so it reads the row as a sample of
  K = 2 whose column 0 is the prompt alone, the gating's context, and column 1 the rated
  response), ``ratings`` (attribute -> value) and ``preference`` (the record's
  ``preference`` field, e.g. UltraFeedback's overall score; without one the mean of the
  attributes);
- ``{split}_attributes.npy`` ``(R, J)`` float32: the ratings in ``attributes`` order.

Pairs for the gating come from the preference values
(:mod:`embrm.multi_objective.rating_pairs`).
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from embrm.data.arrays import save_array
from embrm.data.preferences import check_source, prompt_dialogue, reply, split_pairs
from embrm.io.errors import InputError
from embrm.io.jsonio import write_json, write_jsonl

SECTION = "data.ratings"


def rating_value(record: dict, field: str, where: str, key: str = "attributes") -> float:
    """Field ``field`` of a record (named by the config key ``key``) as a finite float."""
    if record.get(field) is None:
        raise InputError(
            f"{where}: no rating field {field!r} ({SECTION}.{key} names it; the "
            f"record has {sorted(record)})"
        )
    value = record[field]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InputError(f"{where}: field {field!r} must be a number, found {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise InputError(f"{where}: field {field!r} must be a number, found {value!r}") from None
    if not math.isfinite(number):
        raise InputError(f"{where}: field {field!r} must be a finite number, found {value!r}")
    return number


def parse_ratings(
    records,
    *,
    source: str,
    attributes: list[str],
    max_responses: int | None,
    counts: Counter,
    preference: str | None = None,
) -> list[dict]:
    """Rated responses ``{id, prompt, response, ratings, preference}`` in record order,
    up to ``max_responses``; ``counts`` gets the records read. ``preference``: the field
    that orders a prompt's responses (None: the mean of the attributes)."""
    out = []
    for i, record in enumerate(records):
        rid = str(i if record.get("id") is None else record["id"])
        where = f"{source}: record {rid}"
        counts["records"] += 1
        missing = [f for f in ("prompt", "response") if record.get(f) is None]
        if missing:
            raise InputError(
                f"{where}: no field {missing[0]!r} (a rated response needs prompt and "
                f"response; the record has {sorted(record)})"
            )
        ratings = {a: rating_value(record, a, where) for a in attributes}
        out.append(
            {
                "id": rid,
                "prompt": prompt_dialogue(record["prompt"], where),
                "response": reply(record["response"], where, "response"),
                "ratings": ratings,
                "preference": (
                    float(np.mean(list(ratings.values())))
                    if preference is None
                    else rating_value(record, preference, where, "preference")
                ),
            }
        )
        if max_responses is not None and len(out) >= max_responses:
            break
    if not out:
        raise InputError(f"{source}: no rated responses")
    return out


def prepare_ratings(*, cfg: dict, out_ratings: dict, out_attributes: dict, report) -> dict:
    """Read, check, split and write the rated responses of ``data.ratings`` (``cfg``).

    ``out_ratings``, ``out_attributes``: split -> path of ``{split}_ratings.jsonl`` and
    ``{split}_attributes.npy`` ``(R, J)``; ``report``: JSON of the counts and each
    split's responses, prompts and per-attribute mean and std.
    """
    attributes = list(cfg["attributes"])
    if not attributes or len(set(attributes)) != len(attributes):
        raise InputError(f"{SECTION}.attributes must name distinct fields, got {attributes}")
    check_source(cfg["source"], SECTION, "ratings")
    counts = Counter()

    def parse(records, *, source, counts):
        return parse_ratings(
            records,
            source=source,
            attributes=attributes,
            max_responses=cfg["max_responses"],
            counts=counts,
            preference=cfg["preference"],
        )

    splits = split_pairs(cfg, counts, parse, SECTION)
    summary = {"source": cfg["source"], "records": counts["records"], "splits": {}}
    for split, rows in splits.items():
        values = np.array([[r["ratings"][a] for a in attributes] for r in rows], np.float32)
        write_jsonl(
            out_ratings[split],
            [
                {
                    "id": r["id"],
                    "prompt": r["prompt"],
                    "responses": ["", r["response"]],
                    "ratings": r["ratings"],
                    "preference": r["preference"],
                }
                for r in rows
            ],
        )
        save_array(out_attributes[split], values)
        summary["splits"][split] = {
            "responses": len(rows),
            "prompts": len({r["prompt"] for r in rows}),
            "mean": dict(zip(attributes, values.mean(0).tolist())),
            "std": dict(zip(attributes, values.std(0).tolist())),
        }
    write_json(report, summary)
    return summary
