"""Chat templates of real models, as their tokenizer_config.json ships them, and a
tokenizer that renders them (the project's tiny BPE with the template's special tokens).
"""

from __future__ import annotations

from embrm.data.prompts import dialogue_messages
from embrm.generation.tiny_models import builtin_tokenizer

# Qwen2-7B-Instruct (ChatML, with a default system turn)
QWEN2 = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Meta-Llama-3-8B-Instruct
LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)
# gemma-2-2b-it
GEMMA = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}"
    "{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)
# zephyr-7b-beta: no built-in format knows it; only a tokenizer that carries it
ZEPHYR = (
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n"
    "{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n"
    "{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n"
    "{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n"
    "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n"
    "{% endfor %}"
)
# template -> (BOS, end of sequence the policy writes after its answer)
TEMPLATES = {
    "chatml": (QWEN2, None, "<|im_end|>"),
    "llama3": (LLAMA3, "<|begin_of_text|>", "<|eot_id|>"),
    "gemma": (GEMMA, "<bos>", "<end_of_turn>"),
    "zephyr": (ZEPHYR, None, "<|endoftext|>"),
}


def templated_tokenizer(name: str):
    """The tiny BPE tokenizer carrying template ``name`` (and its BOS)."""
    template, bos, _ = TEMPLATES[name]
    tok = builtin_tokenizer(300)
    if bos:
        tok.add_special_tokens({"bos_token": bos})
    tok.chat_template = template
    return tok


def openrlhf_query(tok, hh_prompt: str, response: str, eos: str) -> tuple[str, str]:
    """``(query, prompt)`` as OpenRLHF builds them for an HH dialogue: the prompt
    rendered with the generation prompt, the query = prompt + response + end token."""
    prompt = tok.apply_chat_template(
        dialogue_messages(hh_prompt)[:-1], tokenize=False, add_generation_prompt=True
    )
    return prompt + response + eos, prompt
