"""Reading a benchmark's records (a local JSONL/JSON/parquet file or a hub dataset id)
into checked :class:`~embrm.evaluate.benchmarks.rewardbench.Item` s.

- ``v1`` (RewardBench): ``prompt``, ``chosen``, ``rejected`` (strings), ``subset``,
  ``id``; hub split ``filtered``.
- ``v2`` (RewardBench 2): ``prompt``, ``chosen`` and ``rejected`` (lists of strings,
  at least one each), ``subset``, ``id`` (Ties: ``ref:<n>`` / ``tied:<n>``); hub split
  ``test``. A ``num_correct`` field, where present, must equal the chosen count.

A prompt (string or ``[{role, content}]`` messages) and each completion are rendered
as the pair data are (:mod:`embrm.data.preferences`), so a benchmark is embedded
like the human pairs an ensemble may have learned from.
"""

from __future__ import annotations

from embrm.data.preferences import prompt_dialogue, reply
from embrm.data.prompts import load_records, local_file
from embrm.evaluate.benchmarks.rewardbench import Item, is_ties, ties_key
from embrm.io.errors import InputError

LAYOUTS = ("v1", "v2")
HUB_SPLITS = {"v1": "filtered", "v2": "test"}
FIELDS = ("prompt", "chosen", "rejected", "subset", "id")


def hub_records(source: str, split: str):
    """One split of a hub dataset; offline or unknown, an error naming the id and how to
    use a local copy instead."""
    try:
        return load_records(source, split)
    except Exception as exc:  # datasets raises connection, offline and not-found errors
        raise InputError(
            f"{source}: cannot load split {split!r} of this hub dataset ({type(exc).__name__}: "
            f"{exc}). Offline, download it where there is a network (datasets.load_dataset("
            f"{source!r}, split={split!r}).to_json('FILE.jsonl')) and set the benchmark's "
            "source to that local file"
        ) from exc


def read_records(source: str, layout: str, split: str | None = None):
    """The raw records of a local file (all of them) or of a hub split (default: the
    layout's)."""
    if layout not in LAYOUTS:
        raise InputError(f"{source}: benchmark layout must be one of {LAYOUTS}, not {layout!r}")
    if local_file(source) is not None:
        return load_records(source, split or "test")
    return hub_records(source, split or HUB_SPLITS[layout])


def completions(record: dict, field: str, layout: str, where: str) -> list[str]:
    """The completions of ``field``: one string (v1) or a non-empty list of strings (v2)."""
    value = record[field]
    if layout == "v1":
        if not isinstance(value, (str, list)):
            raise InputError(f"{where}: field {field!r} must be a string (layout v1)")
        return [reply(value, where, field)]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise InputError(
            f"{where}: field {field!r} must be a non-empty list of strings (layout v2), "
            f"found {type(value).__name__}"
        )
    return [reply(v, where, field) for v in value]


def parse_item(record: dict, layout: str, where: str) -> Item:
    missing = [f for f in FIELDS if record.get(f) is None]
    if missing:
        raise InputError(
            f"{where}: no field {missing[0]!r} (layout {layout} needs {list(FIELDS)}; "
            f"the record has {sorted(record)})"
        )
    chosen = completions(record, "chosen", layout, where)
    rejected = completions(record, "rejected", layout, where)
    if record.get("num_correct") is not None and int(record["num_correct"]) != len(chosen):
        raise InputError(
            f"{where}: num_correct is {record['num_correct']} but 'chosen' holds {len(chosen)}"
        )
    item = Item(
        id=str(record["id"]),
        subset=str(record["subset"]),
        prompt=prompt_dialogue(record["prompt"], where),
        completions=tuple(chosen + rejected),
        n_correct=len(chosen),
    )
    if layout == "v2" and is_ties(item.subset):
        kind, _ = ties_key(item)
        if kind == "tied" and item.n_correct < 2:
            raise InputError(f"{where}: a 'tied' Ties row needs two or more chosen completions")
    return item


def read_benchmark(source: str, layout: str, split: str | None = None) -> list[Item]:
    """Every record of ``source`` as a checked :class:`Item`, in file order; ids unique."""
    items = [
        parse_item(dict(r), layout, f"{source}: record {i}")
        for i, r in enumerate(read_records(source, layout, split))
    ]
    seen = set()
    for it in items:
        if it.id in seen:
            raise InputError(f"{source}: id {it.id!r} appears twice; ids must be unique")
        seen.add(it.id)
    return items
