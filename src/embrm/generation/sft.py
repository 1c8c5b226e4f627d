"""Step 1: LoRA SFT of the policy with loss only on the assistant completion.

Plain ``transformers.Trainer`` + ``peft`` with labels set to -100 on the prompt: on the
measured stack it was simpler and faster than TRL's SFTTrainer, and it never drops an
example (TRL's default truncation silently dropped examples whose prompt filled
``max_length``). Prompts are trimmed from the left so every completion keeps at least
``min_completion_tokens`` tokens; ``append_eos`` ends each completion with EOS (the
published SFT did not). The examples come from :mod:`embrm.generation.sft_data`.

With several GPUs in the job (``gpus``: the rule's request), or a DeepSpeed config
(ZeRO-3: ``config/deepspeed_zero3.json``), training runs under ``torchrun`` (PyTorch's
launcher, the one accelerate and deepspeed wrap), one process per GPU. An optimizer
step sees ``global_batch_size`` examples (null: ``batch_size`` x GPUs), reached by
gradient accumulation, so the number of steps does not depend on the GPUs.

Training saves a checkpoint every ``checkpoint_steps`` optimizer steps next to the
adapter (``sft/trainer/``); a job that was killed (a timeout, a lost node) resumes from
its last complete checkpoint when it runs again, provided it trains the same thing (a
fingerprint of the job, its examples and the base model's files), and removes them once
the adapter is saved. The adapter is then merged into a freshly loaded copy of the base
weights when a consumer needs a merged model (the ``hf`` sampler), so the merge never
touches ZeRO-3-partitioned parameters.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from embrm.generation.models import device, dtype_for, load_tokenizer
from embrm.generation.sft_data import sft_examples
from embrm.io.errors import InputError
from embrm.io.jsonio import read_json, read_jsonl, write_json, write_jsonl

log = logging.getLogger(__name__)

IGNORE = -100


def special_prefix(tok) -> list[int]:
    """The ids the tokenizer puts before any text (BOS for Llama/Gemma, none for GPT-2):
    sampling tokenises prompts with them, so training must see them too."""
    plain = tok("a", add_special_tokens=False)["input_ids"]
    full = tok("a")["input_ids"]
    return full[: len(full) - len(plain)] if full[len(full) - len(plain) :] == plain else []


def encode_example(
    tok, prompt: str, completion: str, max_length: int, min_completion: int, append_eos=True
):
    """Token ids and labels: the prompt is masked, trimmed from the left to fit (after
    the tokenizer's special prefix, which stays first); the completion ends with EOS
    when ``append_eos``."""
    prefix = special_prefix(tok)
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    c = tok(completion, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] * append_eos
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


def accumulation_steps(cfg: dict, world: int) -> int:
    """Gradient accumulation that makes an optimizer step ``global_batch_size`` examples
    over ``world`` processes of ``batch_size`` each (1 when it is null)."""
    per_step = cfg["batch_size"] * world
    target = cfg["global_batch_size"]
    if target is None:
        return 1
    if target % per_step:
        raise InputError(
            f"config key generation.sft.global_batch_size={target} is not a multiple of "
            f"batch_size x GPUs = {cfg['batch_size']} x {world} (cluster.gpu.sft.gpus): an "
            "optimizer step would not see that many examples"
        )
    return target // per_step


def fingerprint(job: dict, examples_file: Path) -> str:
    """What a checkpoint was trained on: the job (but its checkpoint interval), the
    examples' bytes and the base model folder's file names, sizes and times."""
    digest = hashlib.sha256()
    core = {k: v for k, v in job.items() if k != "checkpoint_steps"}
    digest.update(json.dumps(core, sort_keys=True).encode())
    digest.update(examples_file.read_bytes())
    base = Path(job["base_model"])
    if base.is_dir():
        for f in sorted(p for p in base.iterdir() if p.is_file()):
            digest.update(f"{f.name}\0{f.stat().st_size}\0{f.stat().st_mtime_ns}\0".encode())
    return digest.hexdigest()


def checkpoints(work: Path) -> list[Path]:
    """The Trainer's checkpoint folders in ``work``, oldest first."""
    found = [p for p in work.glob("checkpoint-*") if p.is_dir() and p.name[11:].isdigit()]
    return sorted(found, key=lambda p: int(p.name[11:]))


def last_checkpoint(work: Path) -> Path | None:
    """The newest complete checkpoint (the Trainer writes trainer_state.json last)."""
    done = [p for p in checkpoints(work) if (p / "trainer_state.json").is_file()]
    return done[-1] if done else None


def prepare_work(work: Path, job: dict, examples: list[dict]) -> None:
    """Write the examples; drop checkpoints of any other training than this job's."""
    work.mkdir(parents=True, exist_ok=True)
    write_jsonl(job["examples_file"], examples)
    mark = work / "fingerprint"
    current = fingerprint(job, Path(job["examples_file"]))
    if not mark.is_file() or mark.read_text() != current:
        for old in checkpoints(work):
            shutil.rmtree(old)
        mark.write_text(current)


def train_sft(
    base_model: str,
    prompts_file,
    out_adapter,
    out_merged,
    cfg: dict,
    *,
    seed: int,
    trust_remote_code: bool = False,
    test_prompts_file=None,
    gpus: int = 1,
    checkpoint_steps: int = 200,
) -> dict:
    """Train the LoRA adapter on the job's ``gpus`` (torchrun when several), resuming
    from a checkpoint of the same training; then merge it (unless ``out_merged`` is None)."""
    if cfg["deepspeed"] and not Path(cfg["deepspeed"]).is_file():
        raise InputError(f"generation.sft.deepspeed: {cfg['deepspeed']} is not a file")
    examples = sft_examples(
        prompts_file=prompts_file, data=cfg["data"], test_prompts_file=test_prompts_file
    )
    world = gpus if torch.cuda.is_available() else 1
    work = Path(out_adapter).parent / "trainer"
    job = {
        "base_model": str(base_model),
        "examples_file": str(work / "examples.jsonl"),
        "out_adapter": str(out_adapter),
        "cfg": cfg,
        "seed": seed,
        "trust_remote_code": trust_remote_code,
        "accumulation": accumulation_steps(cfg, world),
        "checkpoint_steps": checkpoint_steps,
    }
    prepare_work(work, job, examples)
    # DeepSpeed wants a launcher's distributed environment even on one GPU
    distributed = world > 1 or cfg["deepspeed"] is not None
    stats = launch(job, world) if distributed else fit_adapter(**job)
    # the adapter is saved: a rerun must start afresh, and no run-dependent file stays
    for done in checkpoints(work):
        shutil.rmtree(done)
    (work / "fingerprint").unlink(missing_ok=True)
    if out_merged is not None:
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
    base_model: str,
    examples_file,
    out_adapter,
    cfg: dict,
    seed: int,
    trust_remote_code: bool,
    accumulation: int = 1,
    checkpoint_steps: int = 200,
) -> dict:
    """Train and save the adapter, resuming from the last checkpoint in the work folder;
    under torchrun every rank runs this, rank 0 writes."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments, set_seed

    work = Path(out_adapter).parent / "trainer"
    cuda = torch.cuda.is_available()
    bf16 = cuda and dtype_for(device()) == torch.bfloat16
    # created before the model: with ZeRO-3 these arguments make loading shard the weights
    args = TrainingArguments(
        output_dir=str(work),
        per_device_train_batch_size=cfg["batch_size"],
        gradient_accumulation_steps=accumulation,
        learning_rate=cfg["lr"],
        num_train_epochs=cfg["epochs"],
        gradient_checkpointing=cfg["gradient_checkpointing"],
        deepspeed=cfg["deepspeed"],
        bf16=bf16,
        fp16=cuda and not bf16,
        dataloader_pin_memory=cuda,
        logging_steps=10,
        save_strategy="steps",
        save_steps=checkpoint_steps,
        save_total_limit=1,  # the last checkpoint is all a resume needs
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
            tok,
            r["prompt"],
            r["completion"],
            cfg["max_length"],
            cfg["min_completion_tokens"],
            cfg["append_eos"],
        )
        for r in read_jsonl(examples_file)
    ]
    trainer = Trainer(
        model=model, args=args, train_dataset=data, data_collator=collate(tok.pad_token_id)
    )
    resume = last_checkpoint(work)
    if resume is not None:
        log.info("resuming from %s", resume)
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    trainer.save_model(out_adapter)  # gathers ZeRO-3 shards; writes on rank 0 only
    stats = {
        "examples": len(data),
        "train_loss": result.training_loss,
        "optimizer_steps": trainer.state.global_step,
        "global_batch_size": cfg["batch_size"] * args.world_size * accumulation,
        "resumed_from": resume.name if resume else None,
    }
    if trainer.is_world_process_zero():
        (Path(out_adapter) / "training_args.bin").unlink(missing_ok=True)  # a pickle; unused
        stable_target_modules(Path(out_adapter) / "adapter_config.json")
        tok.save_pretrained(out_adapter)
        write_json(work / "stats.json", stats)
        log.info("SFT on %d examples: train loss %.4f", len(data), result.training_loss)
    return stats


def merge_adapter(base_model: str, adapter_dir, out_merged, trust_remote_code: bool) -> None:
    """Base weights + LoRA update as one plain checkpoint (for the hf sampler; vLLM loads
    the adapter onto the base model itself)."""
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
