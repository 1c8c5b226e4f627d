"""Human preference pairs (prompt, chosen, rejected) in place of steps 1-3 (``data.source:
pairs``); step 4 embeds them like generated samples.

Two record layouts are read, by the fields a record has:

- HH-RLHF: ``chosen`` and ``rejected`` are whole dialogues (strings, or
  ``[{role, content}]`` message lists); both share the prompt up to their last
  "\\n\\nAssistant:" turn, and the text after it is the response. A pair whose two
  dialogues differ before that turn has no shared prompt: counted and dropped.
- standard: ``prompt``, ``chosen``, ``rejected`` columns; a prompt string without an
  HH turn becomes one human turn, a message list its HH dialogue; a response string is
  the assistant's reply, a message list its assistant turns.
- ``subset`` (or ``category``) and ``margin`` pass through when present.

A pair whose chosen and rejected texts (as step 4 reads them) are identical has no
preference to learn: counted and dropped. Splits are the source's own
(``train_split``/``test_split``: hub splits or a local file's ``split`` field) or,
with ``test_fraction``, a seeded split of the train records that keeps every prompt on
one side. Per split the canonical files are:

- ``{split}_pairs.jsonl``: per pair ``id``, ``prompt``, ``responses`` (the two
  responses in a seeded random column order), ``chosen`` (the chosen column, 0 or 1)
  and the pass-through fields; step 4 embeds ``prompt + response`` of each column;
- ``{split}_preferences.npy`` ``(N, 2)`` float32: 1 for the chosen column, 0 for the
  rejected one. With the embeddings ``(N, 2, D)``, nothing depends on chosen being
  column 0: a model that prefers column 0 scores 50 %.
"""

from __future__ import annotations

import logging
from collections import Counter
from functools import partial
from pathlib import Path

import numpy as np

from embrm.data.arrays import save_array
from embrm.data.prompts import (
    ASSISTANT,
    LOCAL_SUFFIXES,
    TURN,
    conversation_text,
    load_records,
    local_file,
    split_dialogue,
)
from embrm.data.texts import plain_text
from embrm.io.errors import InputError
from embrm.io.jsonio import write_json, write_jsonl

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
SUBSET_FIELDS = ("subset", "category")


def as_dialogue(value, where: str, field: str) -> str:
    """A dialogue string, or a ``[{role, content}]`` list as one HH dialogue string."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(t, dict) and "content" in t for t in value):
        return conversation_text(value)
    raise InputError(
        f"{where}: field {field!r} must be a string or a list of {{role, content}} "
        f"messages, found {type(value).__name__}"
    )


def prompt_dialogue(value, where: str) -> str:
    """The ``prompt`` field as an HH dialogue ending in "\\n\\nAssistant:"."""
    text = as_dialogue(value, where, "prompt")
    if not TURN.search(text):
        text = f"\n\nHuman: {text}"
    return text if text.rstrip().endswith(ASSISTANT) else text.rstrip() + ASSISTANT


def reply(value, where: str, field: str) -> str:
    """A response field as the text after "\\n\\nAssistant:" (HH style, one leading space)."""
    text = as_dialogue(value, where, field)
    if text.startswith(ASSISTANT):
        return text[len(ASSISTANT) :]
    return text if text[:1].isspace() else " " + text


def parse_pair(record: dict, where: str) -> tuple[str, str, str] | None:
    """``(prompt, chosen, rejected)`` of one record, or None where the two dialogues of an
    HH-style record do not share a prompt (or lack an assistant turn)."""
    missing = [f for f in ("chosen", "rejected") if record.get(f) is None]
    if missing:
        raise InputError(
            f"{where}: no field {missing[0]!r} (a pair needs chosen and rejected, and "
            f"optionally prompt; the record has {sorted(record)})"
        )
    if record.get("prompt") is not None:
        prompt = prompt_dialogue(record["prompt"], where)
        return (
            prompt,
            reply(record["chosen"], where, "chosen"),
            reply(record["rejected"], where, "rejected"),
        )
    chosen = split_dialogue(as_dialogue(record["chosen"], where, "chosen"))
    rejected = split_dialogue(as_dialogue(record["rejected"], where, "rejected"))
    if chosen is None or rejected is None or chosen[0] != rejected[0]:
        return None
    return chosen[0], chosen[1], rejected[1]


def extra_fields(record: dict, where: str) -> dict:
    """``subset`` (from ``subset`` or ``category``) and ``margin``, where present."""
    out = {}
    subset = next((record[f] for f in SUBSET_FIELDS if record.get(f) is not None), None)
    if subset is not None:
        out["subset"] = str(subset)
    if record.get("margin") is not None:
        try:
            out["margin"] = float(record["margin"])
        except (TypeError, ValueError):
            raise InputError(
                f"{where}: field 'margin' must be a number, found {record['margin']!r}"
            ) from None
    return out


def parse_records(records, *, source: str, max_pairs: int | None, counts: Counter) -> list[dict]:
    """Usable pairs ``{id, prompt, chosen, rejected, ...}`` in record order, up to
    ``max_pairs``; ``counts`` gets the records read and those dropped, by reason."""
    out = []
    for i, record in enumerate(records):
        rid = str(i if record.get("id") is None else record["id"])
        where = f"{source}: record {rid}"
        counts["records"] += 1
        parsed = parse_pair(record, where)
        if parsed is None:
            counts["dropped_no_shared_prompt"] += 1
            continue
        prompt, chosen, rejected = parsed
        if plain_text(prompt, chosen) == plain_text(prompt, rejected):
            counts["dropped_identical"] += 1
            continue
        out.append(
            {
                "id": rid,
                "prompt": prompt,
                "chosen": chosen,
                "rejected": rejected,
                **extra_fields(record, where),
            }
        )
        if max_pairs is not None and len(out) >= max_pairs:
            break
    if not out:
        raise InputError(f"{source}: no usable preference pairs ({dict(counts)})")
    return out


def prompt_disjoint_split(
    pairs: list[dict], test_fraction: float, seed: int, section: str = "data.pairs"
):
    """``(train, test)``: whole prompts, in a seeded random order, go to test until it
    holds ``round(test_fraction * N)`` records or more; order within a split is kept.
    ``section``: the config section errors name."""
    prompts = list(dict.fromkeys(p["prompt"] for p in pairs))
    if len(prompts) < 2:
        raise InputError(f"{section}.test_fraction: a split needs records of at least 2 prompts")
    size = Counter(p["prompt"] for p in pairs)
    target = max(1, round(test_fraction * len(pairs)))
    test, n = set(), 0
    for j in np.random.default_rng([seed, 13]).permutation(len(prompts)):
        if n >= target or len(test) == len(prompts) - 1:
            break
        test.add(prompts[j])
        n += size[prompts[j]]
    return [p for p in pairs if p["prompt"] not in test], [p for p in pairs if p["prompt"] in test]


def check_source(source: str, section: str = "data.pairs", what: str = "preference") -> None:
    """A source named like a local file must exist (else it would be taken for a hub id
    or fail deep inside ``datasets``)."""
    if source.endswith(LOCAL_SUFFIXES) and not Path(source).is_file():
        raise InputError(f"{source}: {what} file not found (config key {section}.source)")


def source_records(cfg: dict, split: str, section: str = "data.pairs"):
    """The records of ``split`` of ``cfg`` (the config ``section``): a hub split, or the
    records of a local file whose ``split`` field names it."""
    name = cfg[f"{split}_split"]
    path = local_file(cfg["source"])
    if path is None:
        return load_records(cfg["source"], name, cfg.get("data_dir"))
    records = load_records(cfg["source"], name)
    if records[0].get("split") is None:
        raise InputError(
            f"{cfg['source']}: records have no 'split' field; set {section}.test_fraction "
            "to split them, or give each record its split"
        )
    chosen = [r for r in records if r.get("split") == name]
    if not chosen:
        raise InputError(f"{cfg['source']}: no record has split={name!r} ({section}.{split}_split)")
    return chosen


def split_pairs(
    cfg: dict, counts: Counter, parse=None, section: str = "data.pairs"
) -> dict[str, list[dict]]:
    """Both splits' records of ``cfg`` (the config ``section``), checked to share no
    prompt. ``parse(records, source=, counts=)`` turns raw records into rows with a
    ``prompt``; None: :func:`parse_records` with ``cfg["max_pairs"]``."""
    if parse is None:
        parse = partial(parse_records, max_pairs=cfg["max_pairs"])
    if cfg["test_fraction"] is not None:
        # a local file: all its records; a hub dataset: its train split
        records = load_records(cfg["source"], cfg["train_split"], cfg.get("data_dir"))
        pool = parse(records, source=cfg["source"], counts=counts)
        train, test = prompt_disjoint_split(pool, cfg["test_fraction"], cfg["seed"], section)
        return {"train": train, "test": test}
    out = {
        split: parse(
            source_records(cfg, split, section),
            source=f"{cfg['source']} ({split})",
            counts=counts,
        )
        for split in SPLITS
    }
    shared = {p["prompt"] for p in out["train"]} & {p["prompt"] for p in out["test"]}
    if shared:
        raise InputError(
            f"{cfg['source']}: {len(shared)} prompts are in both the train and the test "
            f"records; the splits must not share a prompt (use {section}.test_fraction)"
        )
    return out


def oriented(pairs: list[dict], seed: int, split: str) -> tuple[list[dict], np.ndarray]:
    """Rows with the two responses in a seeded random column order, and preferences
    ``(N, 2)``: 1 for the chosen column."""
    chosen_col = np.random.default_rng([seed, SPLITS.index(split), 7]).integers(0, 2, len(pairs))
    rows = []
    for p, col in zip(pairs, chosen_col):
        responses = [p["rejected"], p["chosen"]] if col else [p["chosen"], p["rejected"]]
        extra = {k: v for k, v in p.items() if k not in ("chosen", "rejected")}
        rows.append({**extra, "responses": responses, "chosen": int(col)})
    prefs = np.zeros((len(pairs), 2), dtype=np.float32)
    prefs[np.arange(len(pairs)), chosen_col] = 1.0
    return rows, prefs


def write_pair_splits(
    splits: dict[str, list[dict]], *, seed: int, out_pairs: dict, out_preferences: dict
) -> dict:
    """Write each split's pairs ``{id, prompt, chosen, rejected, ...}`` as
    ``{split}_pairs.jsonl`` and ``{split}_preferences.npy`` ``(N, 2)`` (:func:`oriented`);
    returns per split the pairs, prompts, chosen-in-column-0 and pairs per subset."""
    summary = {}
    for split, pairs in splits.items():
        rows, prefs = oriented(pairs, seed, split)
        write_jsonl(out_pairs[split], rows)
        save_array(out_preferences[split], prefs)
        summary[split] = {
            "pairs": len(rows),
            "prompts": len({r["prompt"] for r in rows}),
            "chosen_in_column_0": int(prefs[:, 0].sum()),
            "subsets": dict(Counter(r["subset"] for r in rows if "subset" in r)),
        }
    return summary


def prepare_pairs(*, cfg: dict, out_pairs: dict, out_preferences: dict, report) -> dict:
    """Read, check, split and write the pairs of ``data.pairs`` (``cfg``).

    ``out_pairs``, ``out_preferences``: split -> path of ``{split}_pairs.jsonl`` and
    ``{split}_preferences.npy`` ``(N, 2)``; ``report``: JSON of the counts (records
    read, pairs dropped by reason, pairs and prompts per split, pairs per subset).
    """
    check_source(cfg["source"])
    counts = Counter()
    splits = split_pairs(cfg, counts)
    summary = {
        "source": cfg["source"],
        "records": counts["records"],
        "dropped_identical": counts["dropped_identical"],
        "dropped_no_shared_prompt": counts["dropped_no_shared_prompt"],
        "splits": write_pair_splits(
            splits, seed=cfg["seed"], out_pairs=out_pairs, out_preferences=out_preferences
        ),
    }
    if summary["dropped_identical"]:
        log.warning("%d pairs with identical texts dropped", summary["dropped_identical"])
    if summary["dropped_no_shared_prompt"]:
        log.warning(
            "%d pairs whose dialogues share no prompt dropped",
            summary["dropped_no_shared_prompt"],
        )
    write_json(report, summary)
    return summary
