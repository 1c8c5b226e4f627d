"""Turn what each caller sends into the exact text step 4 embedded.

Step 4 embedded ``prompt + response`` with the response cut at its next
``"\\n\\nHuman"`` turn (:func:`embrm.data.texts.cut_response`); HH-style prompts end
with ``"\\n\\nAssistant:"``. :class:`TextReader` reads every entry point's input into that
form: a chat template's text (ChatML, Llama 3, Gemma, the bundle tokenizer's own
template; see :mod:`embrm.serve.chat`) is rendered as the dialogue, TRL's
conversational format (message lists) likewise, and HH text is kept, stripped of
end-of-sequence tokens. Text in none of these forms is scored as given and reported as
unrecognised (format ``None``).
"""

from __future__ import annotations

import logging
from collections import Counter

from embrm.data.prompts import ASSISTANT, TURN, conversation_text
from embrm.data.texts import cut_response
from embrm.io.errors import InputError
from embrm.serve.chat import BUILT_IN, ChatFormat, dialogue

log = logging.getLogger(__name__)

# end-of-sequence strings of common policies (GPT-2, Llama 2/3, Gemma, Qwen): the
# training texts were decoded without them
END_TOKENS = ("<|endoftext|>", "</s>", "<eos>", "<end_of_turn>", "<|eot_id|>", "<|im_end|>")
HH = "hh"
MESSAGES = "messages"


class FormatTally(Counter):
    """Texts read per format name (None: in no known format, scored as given)."""

    def add(self, names: list) -> None:
        self.update(names)
        unknown = names.count(None)
        if unknown:
            log.warning("%d of %d texts in no known format: scored as given", unknown, len(names))


class BadText(InputError):
    """A text the tokenizer cannot read (not a string, or not valid Unicode: a lone
    surrogate such as ``"\\ud800"`` passes JSON but no UTF-8 encoder)."""

    def __init__(self, field: str, index: int, problem: str):
        super().__init__(f"{field}[{index}]: {problem}")
        self.field, self.index, self.problem = field, index, problem


def check_texts(texts, field: str) -> None:
    """Raise :class:`BadText` naming ``field`` and the index of the first bad text."""
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise BadText(field, i, f"expected a string, got {type(text).__name__}")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise BadText(
                field, i, f"not valid Unicode ({exc.reason} at character {exc.start})"
            ) from None


def strip_end_tokens(text: str, tokens=END_TOKENS) -> str:
    for token in tokens:
        text = text.replace(token, "")
    return text


def _content(completion) -> str:
    """A completion as text: a string, or a list of messages (TRL's conversational form)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and all(isinstance(m, dict) for m in completion):
        return "".join(str(m.get("content", "")) for m in completion)
    raise InputError(f"a completion must be a string or a list of messages: {type(completion)}")


class TextReader:
    """Inputs -> ``(text, format)``: step 4's text and the name of the format it was
    read in (``"hh"``, ``"messages"``, a :class:`ChatFormat`'s name, or None)."""

    def __init__(self, formats: tuple[ChatFormat, ...] = BUILT_IN):
        self.formats = formats

    def pair(self, prompt: str | None, response: str) -> tuple[str, str | None]:
        """``prompt`` (None: ``response`` is the whole exchange) and its response."""
        full = (prompt or "") + response
        for fmt in self.formats:
            turns = fmt.turns(full)
            if turns is None:
                continue
            head = fmt.turns(prompt) if prompt else None
            if head and head[-1]["role"] == "assistant":
                turns = turns[: len(head)]  # the response ends the prompt's open turn
            return dialogue(turns), fmt.name
        name = HH if TURN.search(full) else None
        if prompt is None:
            return strip_end_tokens(response), name
        return strip_end_tokens(prompt) + cut_response(strip_end_tokens(response)), name

    def pairs(self, prompts: list, responses: list[str]) -> tuple[list[str], list]:
        """:meth:`pair` of each (prompt, response): texts and formats."""
        read = [self.pair(p, r) for p, r in zip(prompts, responses)]
        return [t for t, _ in read], [n for _, n in read]

    def queries(self, queries: list[str], prompts: list[str] | None):
        """OpenRLHF's ``query`` (prompt + response) and ``prompts``: texts, formats, and
        per query 1.0 if it was split at its prompt (0.0: no prompt given or the query
        does not start with it; read whole)."""
        texts, names, split = [], [], []
        for i, query in enumerate(queries):
            prompt = prompts[i] if prompts else None
            at = prompt is not None and query.startswith(prompt)
            text, name = self.pair(prompt, query[len(prompt) :]) if at else self.pair(None, query)
            texts.append(text)
            names.append(name)
            split.append(float(at))
        return texts, names, split

    def trl(self, prompts, completions):
        """Texts and formats of TRL's standard (strings) or conversational (message
        lists) examples."""
        if prompts is None or completions is None or len(prompts) != len(completions):
            raise InputError("prompts and completions must be given, one prompt per completion")
        texts, names = [], []
        for prompt, completion in zip(prompts, completions):
            if isinstance(prompt, list):  # conversational: render the dialogue
                rendered = conversation_text(prompt) + ASSISTANT
                texts.append(rendered + cut_response(" " + _content(completion)))
                names.append(MESSAGES)
            else:
                text, name = self.pair(prompt, _content(completion))
                texts.append(text)
                names.append(name)
        return texts, names
