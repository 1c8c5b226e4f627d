"""Tiny models built locally so the embedded default runs all eight stages offline.

A byte-level BPE tokenizer trained on the project's own prompt text, a randomly
initialised 2-layer GPT-2 policy and a GPT-2 sequence classifier with one logit as the
golden reward model; and a randomly initialised 2-layer Llama policy with the same
tokenizer, an architecture vLLM serves with a LoRA adapter (``config/gpu_smoke.yaml``
samples with it through vLLM). Each is saved with ``save_pretrained`` and every stage loads it
with ``from_pretrained``: exactly the code path real checkpoints take. Their outputs
are meaningless; they prove the plumbing.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    GPT2Config,
    GPT2ForSequenceClassification,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from embrm.data.builtin_prompts import dialogues
from embrm.generation.checks import tiny_llama_heads

EOS, PAD = "<|endoftext|>", "<pad>"


def train_tokenizer(texts, vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE with a pad token distinct from EOS (the golden RM needs that)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=EOS, bos_token=EOS, pad_token=PAD, model_max_length=512
    )


def builtin_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    """The tokenizer every tiny model shares, trained on the built-in dialogues."""
    return train_tokenizer([d["prompt"] + d["completion"] for d in dialogues()], vocab_size)


def save(model, tokenizer, out) -> None:
    Path(out).mkdir(parents=True, exist_ok=True)
    model.eval().save_pretrained(out)
    tokenizer.save_pretrained(out)


def build_llama(out_policy, *, vocab_size: int, n_layer: int, n_embd: int, seed: int):
    """Save a tiny Llama causal LM: heads of 64 dimensions (a size every vLLM attention
    backend supports), ``n_embd // 64`` of them, as many key/value heads."""
    torch.manual_seed(seed)
    tokenizer = builtin_tokenizer(vocab_size)
    heads = tiny_llama_heads(n_embd)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=n_embd,
        intermediate_size=4 * n_embd,
        num_hidden_layers=n_layer,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=n_embd // heads,
        max_position_embeddings=512,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    save(LlamaForCausalLM(config), tokenizer, out_policy)


def build(out_policy, out_golden, *, vocab_size: int, n_layer: int, n_embd: int, seed: int):
    """Save a tiny causal LM and a tiny one-logit golden RM, sharing one tokenizer."""
    torch.manual_seed(seed)
    tokenizer = builtin_tokenizer(vocab_size)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=512,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=max(1, n_embd // 32),
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    golden_config = GPT2Config(**{**config.to_dict(), "id2label": {0: "reward"}})
    for out, cls, cfg in (
        (out_policy, GPT2LMHeadModel, config),
        (out_golden, GPT2ForSequenceClassification, golden_config),
    ):
        save(cls(cfg), tokenizer, out)
