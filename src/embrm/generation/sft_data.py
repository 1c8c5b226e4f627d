"""Step 1's training examples: the train prompts' own replies, or a set of demonstrations.

``generation.sft.data: null`` trains on the prepared train prompts with their own
completions (for HH-RLHF, the ``chosen`` reply). Otherwise ``data`` names demonstrations:
a local ``.csv``/``.jsonl``/``.json``/``.parquet`` file or a hub dataset, whose
``prompt_field`` and ``completion_field`` columns are the prompt and the target reply.
``{task}`` in ``source`` becomes the task, so one setting serves both tasks.

The published SFT trained on GPT-4 demonstrations (its ``-gpt4`` data sets): a CSV per
task, ``synthetic_hhrlhf_<task>_expert_gpt4.csv``, whose ``query`` column, less its first
85 characters, is the prompt and whose ``response`` column is the reply; it joined the
two with a space. ``prompt_skip_chars`` drops such a prefix, and a completion that does
not start with whitespace gets one space, as after HH's ``"Assistant:"``.

A demonstration whose prompt is also a test prompt is refused before training: the
policy must not learn answers to the prompts it is evaluated on.
"""

from __future__ import annotations

import logging
from pathlib import Path

from embrm.data.prompts import LOCAL_SUFFIXES, load_records
from embrm.io.errors import InputError
from embrm.io.jsonio import read_jsonl

log = logging.getLogger(__name__)

DEFAULTS = {
    "data_dir": None,
    "split": "train",
    "prompt_field": "prompt",
    "completion_field": "completion",
    "prompt_skip_chars": 0,
    "max_examples": None,
}
KEY = "generation.sft.data"


def data_settings(data: dict | None, task: str, repo_dir: str | None = None) -> dict | None:
    """``generation.sft.data`` with its defaults, ``{task}`` filled in, and a local file
    resolved against the working directory, else ``repo_dir``; None stays None."""
    if data is None:
        return None
    settings = {**DEFAULTS, **data, "source": data["source"].replace("{task}", task)}
    source = Path(settings["source"])
    if repo_dir and not source.is_absolute() and not source.exists():
        if (Path(repo_dir) / source).exists():
            settings["source"] = str(Path(repo_dir) / source)
    return settings


def local_source(settings: dict | None) -> Path | None:
    """The local file of the demonstrations (None: the prompts' replies, or a hub id);
    a file name that does not exist is an error naming the key."""
    if settings is None:
        return None
    path = Path(settings["source"])
    if path.suffix in LOCAL_SUFFIXES or path.exists():
        if not path.is_file():
            raise InputError(f"{KEY}.source: {path} is not a file")
        return path
    return None


def demonstrations(settings: dict) -> list[dict]:
    """``{"id", "prompt", "completion"}`` of every usable demonstration, in file order."""
    records = load_records(settings["source"], settings["split"], settings["data_dir"])
    fields = (settings["prompt_field"], settings["completion_field"])
    out, empty = [], 0
    for i, record in enumerate(records):
        missing = [f for f in fields if record.get(f) is None]
        if missing:
            raise InputError(
                f"{settings['source']}: record {i} lacks {missing} ({KEY}.prompt_field / "
                f"completion_field; the record has {sorted(record)})"
            )
        prompt = str(record[fields[0]])[settings["prompt_skip_chars"] :]
        completion = str(record[fields[1]])
        if not prompt.strip() or not completion.strip():
            empty += 1
            continue
        if not completion[0].isspace():
            completion = " " + completion
        out.append({"id": str(record.get("id", i)), "prompt": prompt, "completion": completion})
        if settings["max_examples"] is not None and len(out) >= settings["max_examples"]:
            break
    if empty:
        log.warning("%s: %d demonstrations with an empty prompt or reply skipped", KEY, empty)
    if not out:
        raise InputError(f"{settings['source']}: no usable demonstrations ({KEY})")
    return out


def check_no_test_prompts(examples: list[dict], test_prompts_file, source: str) -> None:
    """Refuse demonstrations on test prompts (compared without surrounding whitespace)."""
    test = {r["prompt"].strip(): r["id"] for r in read_jsonl(test_prompts_file)}
    shared = [(e["id"], test[e["prompt"].strip()]) for e in examples if e["prompt"].strip() in test]
    if shared:
        raise InputError(
            f"{source}: {len(shared)} demonstrations are on test prompts (first: demonstration "
            f"{shared[0][0]} has the prompt of test id {shared[0][1]}); {KEY} must not "
            "hold answers to the prompts the policy is evaluated on"
        )


def sft_examples(*, prompts_file, data: dict | None, test_prompts_file=None) -> list[dict]:
    """The SFT examples ``{"id", "prompt", "completion"}``: the train prompts' own
    replies (``data`` None), or the demonstrations of ``data`` (:func:`data_settings`),
    checked against the test prompts."""
    if data is None:
        rows = read_jsonl(prompts_file)
        if not rows or not {"prompt", "completion"} <= set(rows[0]):
            raise InputError(f"{prompts_file}: SFT needs rows with prompt and completion fields")
        return rows
    examples = demonstrations(data)
    if test_prompts_file is not None:
        check_no_test_prompts(examples, test_prompts_file, data["source"])
    log.info("%s: %d demonstrations from %s", KEY, len(examples), data["source"])
    return examples
