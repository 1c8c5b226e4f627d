"""Prompts from HH-RLHF-style or conversation-style datasets, via ``datasets``.

A prompt is the dialogue up to and including its last "\\n\\nAssistant:"; the text
after it (the reply of the ``chosen`` dialogue) is the SFT target. Records without an
assistant turn are counted and the first offending id is logged, never dropped silently.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from embrm.generation.builtin_prompts import dialogues
from embrm.io.errors import InputError
from embrm.io.jsonio import write_jsonl

log = logging.getLogger(__name__)

ASSISTANT = "\n\nAssistant:"
ROLES = {"user": "Human", "human": "Human", "assistant": "Assistant"}
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
        f"{where} has none of the fields chosen/messages/conversations/"
        f"prompt+completion: {sorted(record)}"
    )


def load_records(source: str, split: str, data_dir: str | None = None):
    """Records of one split: a local .jsonl/.jsonl.gz/.parquet file, or a hub dataset id."""
    import datasets

    path = Path(source)
    if path.suffix in (".jsonl", ".gz", ".json", ".parquet") or path.exists():
        if not path.exists():
            raise InputError(f"{path}: prompt file not found")
        kind = "parquet" if path.suffix == ".parquet" else "json"
        return datasets.load_dataset(kind, data_files={split: str(path)}, split=split)
    return datasets.load_dataset(source, data_dir=data_dir, split=split)


def build_prompts(
    records, *, max_prompts: int | None, keep=None, source: str = "records"
) -> list[dict]:
    """``{"id", "prompt", "completion"}`` per usable record, in order, up to ``max_prompts``.

    ``keep(prompt) -> bool`` filters (the reference skips prompts over 450 tokens).
    """
    out, seen, missing, first_missing, filtered = [], set(), 0, None, 0
    for i, record in enumerate(records):
        rid = str(record.get("id", i))
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
    """Write one split's prompts as JSON lines; returns how many were kept."""
    limit = cfg[f"max_{split}_prompts"]
    keep = None
    if tokenizer_dir is not None and cfg["max_prompt_tokens"]:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(tokenizer_dir, trust_remote_code=trust_remote_code)
        keep = lambda p: len(tok(p)["input_ids"]) <= cfg["max_prompt_tokens"]  # noqa: E731
    if cfg["source"] == "builtin":
        records = dialogues()
        n_test = len(records) // 5
        records = records[n_test:] if split == "train" else records[:n_test]
    else:
        records = load_records(cfg["source"], cfg[f"{split}_split"], cfg.get("data_dir"))
    prompts = build_prompts(
        records, max_prompts=limit, keep=keep, source=f"{cfg['source']} ({split})"
    )
    write_jsonl(out_path, prompts)
    log.info("%s: %d prompts", split, len(prompts))
    return len(prompts)
