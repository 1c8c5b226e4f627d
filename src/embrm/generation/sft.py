"""Step 1: LoRA SFT of the policy with loss only on the assistant completion.

Plain ``transformers.Trainer`` + ``peft`` with labels set to -100 on the prompt: on the
measured stack it was simpler and faster than TRL's SFTTrainer, and it never drops an
example (TRL's default truncation silently dropped examples whose prompt filled
``max_length``). Prompts are trimmed from the left so every completion keeps at least
``min_completion_tokens`` tokens. With several GPUs in the job, or a DeepSpeed config
(ZeRO-3: ``config/deepspeed_zero3.json``), training runs under ``torchrun`` (PyTorch's
launcher, the one accelerate and deepspeed wrap), one process per GPU. The adapter is
then merged into a freshly loaded copy of the base weights, so the merge never touches
ZeRO-3-partitioned parameters.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import torch

from embrm.generation.models import device, dtype_for, load_tokenizer
from embrm.io.errors import InputError
from embrm.io.jsonio import read_json, read_jsonl, write_json

log = logging.getLogger(__name__)

IGNORE = -100


def special_prefix(tok) -> list[int]:
    """The ids the tokenizer puts before any text (BOS for Llama/Gemma, none for GPT-2):
    sampling tokenises prompts with them, so training must see them too."""
    plain = tok("a", add_special_tokens=False)["input_ids"]
    full = tok("a")["input_ids"]
    return full[: len(full) - len(plain)] if full[len(full) - len(plain) :] == plain else []


def encode_example(tok, prompt: str, completion: str, max_length: int, min_completion: int):
    """Token ids and labels: the prompt is masked, trimmed from the left to fit (after
    the tokenizer's special prefix, which stays first)."""
    prefix = special_prefix(tok)
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    c = tok(completion, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    room = max_length - len(prefix)
    c = c[: room - min(len(p), room - min_completion)]
    keep = room - len(c)
    p = prefix + (p[len(p) - keep :] if len(p) > keep else p)
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
    """Train the LoRA adapter (over all of the job's GPUs when it has several), then merge."""
    if cfg["deepspeed"] and not Path(cfg["deepspeed"]).is_file():
        raise InputError(f"generation.sft.deepspeed: {cfg['deepspeed']} is not a file")
    rows = read_jsonl(prompts_file)
    if not rows or not {"prompt", "completion"} <= set(rows[0]):
        raise InputError(f"{prompts_file}: SFT needs rows with prompt and completion fields")
    job = {
        "base_model": str(base_model),
        "prompts_file": str(prompts_file),
        "out_adapter": str(out_adapter),
        "cfg": cfg,
        "seed": seed,
        "trust_remote_code": trust_remote_code,
    }
    n_gpus = torch.cuda.device_count()
    # DeepSpeed wants a launcher's distributed environment even on one GPU
    distributed = n_gpus > 1 or cfg["deepspeed"] is not None
    stats = launch(job, max(1, n_gpus)) if distributed else fit_adapter(**job)
    merge_adapter(base_model, out_adapter, out_merged, trust_remote_code)
    return stats


def launch_command(n_procs: int, job_file) -> list[str]:
    """One training process per GPU under torchrun, each running :func:`fit_adapter`."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={n_procs}",
        "-m",
        "embrm.generation.sft",
        str(job_file),
    ]


def launch(job: dict, n_procs: int) -> dict:
    """Run :func:`fit_adapter` under torchrun; its output goes to this rule's log."""
    work = Path(job["out_adapter"]).parent / "trainer"
    write_json(work / "job.json", job)
    cmd = launch_command(n_procs, work / "job.json")
    log.info("launching: %s", " ".join(cmd))
    # progress bars and torch's per-step deprecation notices would flood the log
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore::FutureWarning"}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    for line in proc.stdout:
        if line.strip():
            log.info("[torchrun] %s", line.rstrip())
    if proc.wait() != 0:
        raise RuntimeError(f"distributed SFT failed (exit {proc.returncode}); see the log above")
    return read_json(work / "stats.json")


def fit_adapter(
    base_model: str, prompts_file, out_adapter, cfg: dict, seed: int, trust_remote_code: bool
) -> dict:
    """Train and save the adapter; under torchrun every rank runs this, rank 0 writes."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments, set_seed

    work = Path(out_adapter).parent / "trainer"
    cuda = torch.cuda.is_available()
    bf16 = cuda and dtype_for(device()) == torch.bfloat16
    # created before the model: with ZeRO-3 these arguments make loading shard the weights
    args = TrainingArguments(
        output_dir=str(work),
        per_device_train_batch_size=cfg["batch_size"],
        learning_rate=cfg["lr"],
        num_train_epochs=cfg["epochs"],
        gradient_checkpointing=cfg["gradient_checkpointing"],
        deepspeed=cfg["deepspeed"],
        bf16=bf16,
        fp16=cuda and not bf16,
        dataloader_pin_memory=cuda,
        logging_steps=10,
        save_strategy="no",
        report_to=[],
        seed=seed,
        remove_unused_columns=False,
    )
    set_seed(seed)  # the LoRA matrices are initialised before the Trainer seeds anything
    tok = load_tokenizer(base_model, trust_remote_code, padding_side="right")
    model = AutoModelForCausalLM.from_pretrained(
        base_model,
        dtype=torch.bfloat16 if bf16 else torch.float32,
        trust_remote_code=trust_remote_code,
    )
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
    data = [
        encode_example(
            tok, r["prompt"], r["completion"], cfg["max_length"], cfg["min_completion_tokens"]
        )
        for r in read_jsonl(prompts_file)
    ]
    trainer = Trainer(
        model=model, args=args, train_dataset=data, data_collator=collate(tok.pad_token_id)
    )
    result = trainer.train()
    trainer.save_model(out_adapter)  # gathers ZeRO-3 shards; writes on rank 0 only
    stats = {"examples": len(data), "train_loss": result.training_loss}
    if trainer.is_world_process_zero():
        (Path(out_adapter) / "training_args.bin").unlink(missing_ok=True)  # a pickle; unused
        stable_target_modules(Path(out_adapter) / "adapter_config.json")
        tok.save_pretrained(out_adapter)
        write_json(work / "stats.json", stats)
        log.info("SFT on %d examples: train loss %.4f", len(data), result.training_loss)
    return stats


def merge_adapter(base_model: str, adapter_dir, out_merged, trust_remote_code: bool) -> None:
    """Base weights + LoRA update as one plain checkpoint (for the hf sampler)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dev = device()
    base = AutoModelForCausalLM.from_pretrained(
        base_model, dtype=dtype_for(dev), trust_remote_code=trust_remote_code
    ).to(dev)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(out_merged)
    AutoTokenizer.from_pretrained(adapter_dir).save_pretrained(out_merged)


if __name__ == "__main__":  # one torchrun worker: python -m embrm.generation.sft job.json
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    fit_adapter(**read_json(sys.argv[1]))
