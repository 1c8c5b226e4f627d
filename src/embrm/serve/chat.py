"""Chat-template text back to the dialogue form the embedder was trained on.

A policy trained with a chat template writes ``<|im_start|>user\\nHi<|im_end|>...``;
step 4 embedded ``"\\n\\nHuman: Hi\\n\\nAssistant: Hello"``. A :class:`ChatFormat` knows
one template's turn headers and turn-end markers, splits a rendered text into turns and
renders them as that dialogue. Three are built in (ChatML, Llama 3, Gemma); a tokenizer
with its own ``chat_template`` gives a fourth, read off a probe conversation rendered
through the template (:func:`template_format`).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from embrm.data.prompts import ASSISTANT, conversation_text

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class ChatFormat:
    """``headers``: role -> the literal text that opens its turn; ``ends``: the markers
    that close a turn (everything after the first one, up to the next header, is dropped:
    end-of-sequence tokens, padding)."""

    name: str
    headers: dict[str, str]
    ends: tuple[str, ...]

    @functools.cached_property
    def _pattern(self) -> re.Pattern:
        """Any header, the longest first (built once: every query is tried on it)."""
        alternatives = sorted(self.headers.items(), key=lambda kv: -len(kv[1]))
        return re.compile("|".join(f"(?P<{role}>{re.escape(h)})" for role, h in alternatives))

    def turns(self, text: str) -> list[dict] | None:
        """The ``{"role", "content"}`` turns of ``text``, or None if it holds no user or
        assistant header of this format. Text before the first header (BOS) is dropped."""
        found = list(self._pattern.finditer(text))
        if not any(m.lastgroup in ("user", "assistant") for m in found):
            return None
        out = []
        for m, nxt in zip(found, [*found[1:], None]):
            body = text[m.end() : nxt.start() if nxt else len(text)]
            for end in self.ends:
                cut = body.find(end)
                body = body if cut < 0 else body[:cut]
            out.append({"role": m.lastgroup, "content": body.strip()})
        return out


CHATML = ChatFormat(
    "chatml",
    {r: f"<|im_start|>{r}\n" for r in ROLES},
    ("<|im_end|>", "<|endoftext|>"),
)
LLAMA3 = ChatFormat(
    "llama3",
    {r: f"<|start_header_id|>{r}<|end_header_id|>\n\n" for r in ROLES},
    ("<|eot_id|>", "<|end_of_text|>", "<|eom_id|>"),
)
GEMMA = ChatFormat(
    "gemma",
    {"user": "<start_of_turn>user\n", "assistant": "<start_of_turn>model\n"},
    ("<end_of_turn>", "<eos>"),
)
BUILT_IN = (CHATML, LLAMA3, GEMMA)

_PROBE = ("EMBRMPROBEU1", "EMBRMPROBEA1", "EMBRMPROBEU2", "EMBRMPROBEA2")


def _common_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def template_format(tokenizer) -> ChatFormat | None:
    """The format of ``tokenizer``'s own chat template, or None (no template, or one
    this probe cannot read).

    Renders user/assistant/user/assistant with marker contents: the text between an
    assistant turn and the next user turn is the assistant's end plus the user header;
    the text after the last turn is that end alone. The same with a user turn rendered
    alone separates the user's end from the assistant header.
    """
    if not getattr(tokenizer, "chat_template", None):
        return None
    u1, a1, u2, a2 = _PROBE
    messages = [
        {"role": "user", "content": u1},
        {"role": "assistant", "content": a1},
        {"role": "user", "content": u2},
        {"role": "assistant", "content": a2},
    ]
    try:
        full = tokenizer.apply_chat_template(messages, tokenize=False)
        alone = tokenizer.apply_chat_template(messages[:1], tokenize=False)
    except Exception:  # a template that refuses the probe: no format
        return None
    if not all(m in full for m in _PROBE) or u1 not in alone:
        return None
    after = {m: full[full.index(m) + len(m) :] for m in _PROBE}
    a_end = after[a2]
    between_a_u = after[a1][: after[a1].index(u2)]
    between_u_a = after[u2][: after[u2].index(a2)]
    user_end = _common_prefix(between_u_a, alone[alone.index(u1) + len(u1) :])
    user_header = between_a_u[len(_common_prefix(between_a_u, a_end)) :]
    assistant_header = between_u_a[len(user_end) :]
    ends = tuple(dict.fromkeys(e.strip() for e in (a_end, user_end) if e.strip()))
    if not user_header.strip() or not assistant_header.strip() or not ends:
        return None
    return ChatFormat("template", {"user": user_header, "assistant": assistant_header}, ends)


def dialogue(turns: list[dict], response: str | None = None) -> str:
    """Turns as step 4's text: the dialogue up to ``"\\n\\nAssistant:"`` plus the response
    (``response``, else the last turn's content when that turn is the assistant's)."""
    if response is None and turns and turns[-1]["role"] == "assistant":
        turns, response = turns[:-1], turns[-1]["content"]
    text = conversation_text(turns) + ASSISTANT
    return text + " " + response if response else text
