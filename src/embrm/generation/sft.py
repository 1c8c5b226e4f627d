"""Step 1: LoRA SFT of the policy with loss only on the assistant completion.

Plain ``transformers.Trainer`` + ``peft`` with labels set to -100 on the prompt: on the
measured stack it was simpler and faster than TRL's SFTTrainer, and it never drops an
example (TRL's default truncation silently dropped examples whose prompt filled
``max_length``). Prompts are trimmed from the left so every completion keeps at least
``min_completion_tokens`` tokens. DeepSpeed ZeRO-3 is used when ``deepspeed`` names a
config file (launch the job with ``accelerate launch`` or ``deepspeed``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from embrm.generation.models import load_tokenizer
from embrm.jsonio import read_jsonl

log = logging.getLogger(__name__)

IGNORE = -100


def encode_example(tok, prompt: str, completion: str, max_length: int, min_completion: int):
    """Token ids and labels: the prompt is masked, trimmed from the left to fit."""
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    c = tok(completion, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    c = c[: max_length - min(len(p), max_length - min_completion)]
    keep = max_length - len(c)
    p = p[len(p) - keep :] if len(p) > keep else p
    return {"input_ids": p + c, "labels": [IGNORE] * len(p) + c}


def collate(pad_id: int):
    def fn(batch):
        n = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), n), pad_id)
        labels = torch.full((len(batch), n), IGNORE)
        mask = torch.zeros((len(batch), n), dtype=torch.long)
        for i, b in enumerate(batch):
            k = len(b["input_ids"])
            ids[i, :k] = torch.tensor(b["input_ids"])
            labels[i, :k] = torch.tensor(b["labels"])
            mask[i, :k] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    return fn


def lora_targets(model) -> tuple[list[str] | str, bool]:
    """GPT-2's Conv1D layers need fan_in_fan_out; other models take all linear layers."""
    if model.config.model_type == "gpt2":
        return ["c_attn", "c_proj"], True
    return "all-linear", False


def stable_target_modules(config_file: Path) -> None:
    """peft writes ``target_modules`` from a set, in per-process hash order: sort it, so
    the same run writes the same bytes (artifacts compare equal across machines)."""
    cfg = json.loads(config_file.read_text())
    if isinstance(cfg.get("target_modules"), list):
        cfg["target_modules"] = sorted(cfg["target_modules"])
    config_file.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def train_sft(
    base_model: str,
    prompts_file,
    out_adapter,
    out_merged,
    cfg: dict,
    *,
    seed: int,
    trust_remote_code: bool = False,
) -> dict:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments, set_seed

    set_seed(seed)  # the LoRA matrices are initialised before the Trainer seeds anything
    tok = load_tokenizer(base_model, trust_remote_code, padding_side="right")
    model = AutoModelForCausalLM.from_pretrained(base_model, trust_remote_code=trust_remote_code)
    if len(tok) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tok))
    targets, fan_in_fan_out = lora_targets(model)
    model = get_peft_model(
        model,
        LoraConfig(
            r=cfg["lora_r"],
            lora_alpha=cfg["lora_alpha"],
            lora_dropout=cfg["lora_dropout"],
            target_modules=targets,
            fan_in_fan_out=fan_in_fan_out,
            task_type="CAUSAL_LM",
        ),
    )
    rows = read_jsonl(prompts_file)
    data = [
        encode_example(
            tok, r["prompt"], r["completion"], cfg["max_length"], cfg["min_completion_tokens"]
        )
        for r in rows
    ]
    args = TrainingArguments(
        output_dir=str(Path(out_adapter).parent / "trainer"),
        per_device_train_batch_size=cfg["batch_size"],
        learning_rate=cfg["lr"],
        num_train_epochs=cfg["epochs"],
        gradient_checkpointing=cfg["gradient_checkpointing"],
        deepspeed=cfg["deepspeed"],
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
        logging_steps=10,
        save_strategy="no",
        report_to=[],
        seed=seed,
        remove_unused_columns=False,
    )
    trainer = Trainer(
        model=model, args=args, train_dataset=data, data_collator=collate(tok.pad_token_id)
    )
    result = trainer.train()
    model.save_pretrained(out_adapter)
    stable_target_modules(Path(out_adapter) / "adapter_config.json")
    tok.save_pretrained(out_adapter)
    merged = model.merge_and_unload()
    merged.save_pretrained(out_merged)
    tok.save_pretrained(out_merged)
    log.info("SFT on %d examples: train loss %.4f", len(data), result.training_loss)
    return {"examples": len(data), "train_loss": result.training_loss}
