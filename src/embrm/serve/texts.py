"""Turn what each caller sends into the exact text step 4 embedded.

Step 4 embedded ``prompt + response`` with the response cut at its next
``"\\n\\nHuman"`` turn (:func:`embrm.generation.texts.cut_response`); HH-style prompts end
with ``"\\n\\nAssistant:"``. TRL's conversational format (message lists) is rendered to
that dialogue form first; OpenRLHF's ``query`` (prompt + response, special tokens kept)
is split at its prompt and stripped of end-of-sequence tokens.
"""

from __future__ import annotations

from embrm.generation.prompts import ASSISTANT, conversation_text
from embrm.generation.texts import cut_response
from embrm.io.errors import InputError

# end-of-sequence strings of common policies (GPT-2, Llama 2/3, Gemma, Qwen): the
# training texts were decoded without them
END_TOKENS = ("<|endoftext|>", "</s>", "<eos>", "<end_of_turn>", "<|eot_id|>", "<|im_end|>")


def response_text(prompt: str, response: str) -> str:
    return prompt + cut_response(response)


def _content(completion) -> str:
    """A completion as text: a string, or a list of messages (TRL's conversational form)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and all(isinstance(m, dict) for m in completion):
        return "".join(str(m.get("content", "")) for m in completion)
    raise InputError(f"a completion must be a string or a list of messages: {type(completion)}")


def trl_texts(prompts, completions) -> list[str]:
    """Texts of TRL's standard (strings) or conversational (message lists) examples."""
    if prompts is None or completions is None or len(prompts) != len(completions):
        raise InputError("prompts and completions must be given, one prompt per completion")
    out = []
    for prompt, completion in zip(prompts, completions):
        if isinstance(prompt, list):  # conversational: render the dialogue, then split
            prompt = conversation_text(prompt) + ASSISTANT
            completion = " " + _content(completion)
        out.append(response_text(prompt, _content(completion)))
    return out


def strip_end_tokens(text: str, tokens=END_TOKENS) -> str:
    for token in tokens:
        text = text.replace(token, "")
    return text


def query_texts(queries: list[str], prompts: list[str] | None) -> tuple[list[str], list[float]]:
    """Texts of OpenRLHF queries, and per query 1.0 if it was split at its prompt (0.0:
    no prompt given or the query does not start with it; scored whole, uncut)."""
    out, split = [], []
    for i, query in enumerate(queries):
        prompt = prompts[i] if prompts else None
        if prompt is not None and query.startswith(prompt):
            response = strip_end_tokens(query[len(prompt) :])
            out.append(response_text(strip_end_tokens(prompt), response))
            split.append(1.0)
        else:
            out.append(strip_end_tokens(query))
            split.append(0.0)
    return out, split
