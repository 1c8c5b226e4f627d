"""Prompts from HH-RLHF-style or conversation-style datasets: local files or the hub.

A prompt is the dialogue up to and including its last "\\n\\nAssistant:"; the text
after it (the reply of the ``chosen`` dialogue) is the SFT target. Records without an
assistant turn are counted and the first offending id is logged, never dropped silently.

Each split has its own prompts, and train and test never share one:

- a hub dataset: its ``train_split`` and ``test_split``;
- a local file whose records carry a ``split`` field: the records whose field equals
  ``train_split`` / ``test_split``;
- a local file without one, and the builtin prompts: a prompt-disjoint split by a
  hash of the prompt text (:func:`hash_split`, one prompt in ``TEST_SHARE`` to test),
  so equal prompts always land on the same side, whatever the file order.

After the limits and filters, both splits are compared (prompt-text hashes, and ids
where the records carry them); any overlap is refused, naming the count and the first.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

from embrm.data.builtin_prompts import dialogues
from embrm.io.errors import InputError
from embrm.io.jsonio import check_utf8, iter_jsonl, write_jsonl

log = logging.getLogger(__name__)

ASSISTANT = "\n\nAssistant:"
ROLES = {"user": "Human", "human": "Human", "assistant": "Assistant"}
TEST_SHARE = 5
LOCAL_SUFFIXES = (".jsonl", ".gz", ".json", ".parquet", ".csv")
DATASETS_KINDS = {".parquet": "parquet", ".csv": "csv", ".json": "json"}
TURN = re.compile(r"\n\n(Human|Assistant):")


def conversation_text(messages) -> str:
    """A list of ``{"role", "content"}`` turns as one HH-style dialogue string."""
    parts = []
    for turn in messages:
        role = ROLES.get(str(turn.get("role", "")).lower())
        if role is None:
            continue  # system turns carry no dialogue
        parts.append(f"\n\n{role}: {turn['content']}")
    return "".join(parts)


def dialogue_messages(text: str) -> list[dict]:
    """An HH-style dialogue string as ``{"role", "content"}`` turns (the inverse of
    :func:`conversation_text`); a trailing "Assistant:" gives an empty last turn."""
    parts = TURN.split(text)
    return [
        {"role": "user" if who == "Human" else "assistant", "content": body.strip()}
        for who, body in zip(parts[1::2], parts[2::2])
    ]


def split_dialogue(text: str):
    """``(prompt, completion)`` around the last assistant turn, or None if there is none."""
    cut = text.rfind(ASSISTANT)
    if cut < 0:
        return None
    return text[: cut + len(ASSISTANT)], text[cut + len(ASSISTANT) :]


def record_dialogue(record: dict, where: str = "record") -> str:
    """The ``chosen`` dialogue of an HH record, a conversation's turns, or a
    prompt/completion record, as one dialogue string."""
    if "prompt" in record and "completion" in record:
        return record["prompt"] + record["completion"]
    for key in ("chosen", "messages", "conversations", "conversation"):
        if key in record:
            value = record[key]
            return value if isinstance(value, str) else conversation_text(value)
    raise InputError(
        f"{where} has none of the fields chosen/messages/conversations/prompt+completion "
        f"(its fields: {sorted(record)}); give it one of them or remove the record"
    )


def local_file(source: str) -> Path | None:
    """The path of a local prompt file, or None for ``builtin`` and hub dataset ids."""
    path = Path(source)
    if path.suffix in LOCAL_SUFFIXES or path.exists():
        if not path.exists():
            raise InputError(f"{path}: prompt file not found")
        return path
    return None


def read_jsonl_records(path: Path) -> list[dict]:
    """Every record of a ``.jsonl`` / ``.jsonl.gz`` file; a line that is not UTF-8, not
    JSON or not an object, or a file without records, is one error naming the file and
    its 1-based line."""
    records = []
    for lineno, record in iter_jsonl(path):
        if not isinstance(record, dict):
            raise InputError(
                f"{path}: line {lineno}: expected a JSON object, found {type(record).__name__}"
            )
        records.append(record)
    if not records:
        raise InputError(f"{path}: empty prompt file (no JSON records)")
    return records


def load_records(source: str, split: str, data_dir: str | None = None):
    """Records of a local .jsonl/.jsonl.gz/.json/.parquet/.csv file (all of them: see
    :func:`split_records`), or of one split of a hub dataset id."""
    import datasets

    path = local_file(source)
    if path is not None and path.suffix in (".jsonl", ".gz"):
        return read_jsonl_records(path)
    if path is not None:
        kind = DATASETS_KINDS.get(path.suffix, "json")
        if kind in ("json", "csv"):
            check_utf8(path)
        records = datasets.load_dataset(kind, data_files={split: str(path)}, split=split)
        if len(records) == 0:
            raise InputError(f"{path}: empty prompt file (no records)")
        return records
    return datasets.load_dataset(source, data_dir=data_dir, split=split)


def prompt_text(record: dict, where: str = "record") -> str:
    """The prompt part of a record's dialogue (all of it if it has no assistant turn);
    ``where`` names the record in errors."""
    text = record_dialogue(record, where)
    parts = split_dialogue(text)
    return text if parts is None else parts[0]


def record_name(source: str, index: int, record: dict) -> str:
    """How errors name a record: its ``id``, else its 0-based position in ``source``."""
    rid = index if record.get("id") is None else record["id"]
    return f"{source}: record {rid}"


def hash_split(record: dict, where: str = "record") -> str:
    """``test`` for one prompt text in ``TEST_SHARE`` (by its SHA-256), else ``train``."""
    digest = hashlib.sha256(prompt_text(record, where).encode("utf-8")).digest()
    return "test" if int.from_bytes(digest[:8], "big") % TEST_SHARE == 0 else "train"


def split_records(cfg: dict, split: str) -> list:
    """The records of one split of ``cfg["source"]`` (``generation.prompts``), before
    limits and filters; see the module docstring for how each source is split."""
    name = cfg[f"{split}_split"]
    if cfg["source"] == "builtin":
        return [r for r in dialogues() if hash_split(r) == split]
    if local_file(cfg["source"]) is None:
        return load_records(cfg["source"], name, cfg.get("data_dir"))
    records = load_records(cfg["source"], name)
    if records[0].get("split") is None:
        named = ((r, record_name(cfg["source"], i, r)) for i, r in enumerate(records))
        return [r for r, where in named if hash_split(r, where) == split]
    chosen = [r for r in records if r.get("split") == name]
    if not chosen:
        raise InputError(
            f"{cfg['source']}: no record has split={name!r} (generation.prompts.{split}_split)"
        )
    return chosen


def has_ids(records) -> bool:
    """Whether records carry their own ``id`` (else ids are positions, equal across splits)."""
    first = next(iter(records), {})
    return first.get("id") is not None


def check_disjoint(train: list[dict], test: list[dict], *, source: str, ids: bool) -> None:
    """Refuse test prompts that are also train prompts (same prompt text, or same id
    where ``ids``), naming how many and the first."""

    def digest(p):
        return hashlib.sha256(p["prompt"].encode("utf-8")).hexdigest()

    train_ids = {digest(p): p["id"] for p in train}
    same_text = [(p["id"], train_ids[digest(p)]) for p in test if digest(p) in train_ids]
    if same_text:
        test_id, train_id = same_text[0]
        raise InputError(
            f"{source}: {len(same_text)} test prompts are also train prompts (first: test "
            f"id {test_id} has the prompt text of train id {train_id}); the splits must "
            "not overlap: give each split its own records (a split field) or file"
        )
    shared = sorted({p["id"] for p in train} & {p["id"] for p in test}) if ids else []
    if shared:
        raise InputError(
            f"{source}: {len(shared)} ids are in both the train and the test prompts "
            f"(first: {shared[0]}); the splits must not overlap"
        )


def build_prompts(
    records, *, max_prompts: int | None, keep=None, source: str = "records"
) -> list[dict]:
    """``{"id", "prompt", "completion"}`` per usable record, in order, up to ``max_prompts``.

    ``keep(prompt) -> bool`` filters (the reference skips prompts over 450 tokens).
    """
    out, seen, missing, first_missing, filtered = [], set(), 0, None, 0
    for i, record in enumerate(records):
        rid = str(i if record.get("id") is None else record["id"])
        parts = split_dialogue(record_dialogue(record, f"{source}: record {rid}"))
        if parts is None:
            missing += 1
            if first_missing is None:
                first_missing = rid
            continue
        if rid in seen:
            raise InputError(f"{source}: record id {rid} occurs twice; ids must be unique")
        seen.add(rid)
        if keep is not None and not keep(parts[0]):
            filtered += 1
            continue
        out.append({"id": rid, "prompt": parts[0], "completion": parts[1]})
        if max_prompts is not None and len(out) >= max_prompts:
            break
    if missing:
        log.warning(
            "%s: %d records have no '\\n\\nAssistant:' turn (first: id %s); skipped",
            source,
            missing,
            first_missing,
        )
    if filtered:
        log.info("%d prompts over the token limit skipped", filtered)
    if not out:
        raise InputError(
            f"{source}: no usable prompts (every record lacks an assistant turn or is too long)"
        )
    return out


def prepare_prompts(
    cfg: dict, split: str, out_path, tokenizer_dir=None, trust_remote_code: bool = False
) -> int:
    """Write one split's prompts as JSON lines; returns how many were kept.

    Both splits are built (limits and token filter included) so that the ones in use are
    checked to be disjoint before either is written.
    """
    keep = None
    if tokenizer_dir is not None and cfg["max_prompt_tokens"]:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(tokenizer_dir, trust_remote_code=trust_remote_code)
        keep = lambda p: len(tok(p)["input_ids"]) <= cfg["max_prompt_tokens"]  # noqa: E731
    built, ids = {}, True
    for part in ("train", "test"):
        records = split_records(cfg, part)
        ids = ids and has_ids(records)
        built[part] = build_prompts(
            records,
            max_prompts=cfg[f"max_{part}_prompts"],
            keep=keep,
            source=f"{cfg['source']} ({part})",
        )
    check_disjoint(built["train"], built["test"], source=cfg["source"], ids=ids)
    write_jsonl(out_path, built[split])
    log.info("%s: %d prompts", split, len(built[split]))
    return len(built[split])
