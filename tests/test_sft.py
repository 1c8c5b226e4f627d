"""Step 1's checkpoints, demonstrations and paper-parity options, with the real Trainer on a
locally built tiny GPT-2; and the hf sampler's top-k parity with vLLM.

A killed SFT (a timeout, a lost node) is simulated in a subprocess whose Trainer dies
(``os._exit``, no clean-up, like SIGKILL) in the middle of an optimizer step; rerunning
the same job resumes from its last complete checkpoint.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from embrm.generation import checks, sampling, sft, sft_data
from embrm.generation.tiny_models import build
from embrm.io.errors import InputError
from embrm.io.jsonio import write_jsonl

from conftest import ROOT, SMALL_SFT, run_snakemake, small_generation_config

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CFG = {**SMALL_SFT, "epochs": 2, "batch_size": 2, "max_length": 48}
PROMPT = "\n\nHuman: How do I learn skill {i}?\n\nAssistant:"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    build(d / "policy", d / "golden", vocab_size=600, n_layer=2, n_embd=64, seed=0)
    rows = [
        {"id": str(i), "prompt": PROMPT.format(i=i), "completion": f" Practise {i} daily."}
        for i in range(16)
    ]
    write_jsonl(d / "train.jsonl", rows)
    write_jsonl(d / "test.jsonl", [{"id": "t0", "prompt": PROMPT.format(i="t")}])
    return d


def adapter(folder) -> dict:
    from safetensors.numpy import load_file

    return load_file(str(Path(folder) / "adapter_model.safetensors"))


def train(tiny, out: Path, cfg=CFG, **kwargs) -> dict:
    return sft.train_sft(
        str(tiny / "policy"), tiny / "train.jsonl", out / "adapter", None, cfg, seed=0, **kwargs
    )


# a job whose Trainer dies during its 12th micro-batch (optimizer step 12 of 16)
DYING = """
import os, sys, json
from transformers import Trainer
from embrm.generation.sft import train_sft
step, calls = Trainer.training_step, [0]
def training_step(self, *args, **kwargs):
    calls[0] += 1
    if calls[0] == 12:
        os._exit(9)
    return step(self, *args, **kwargs)
Trainer.training_step = training_step
policy, train, out, cfg = sys.argv[1:5]
train_sft(policy, train, out + "/adapter", None, json.loads(cfg), seed=0, checkpoint_steps=5)
"""


def killed_run(tiny, out: Path, cfg=CFG) -> None:
    cmd = [sys.executable, "-c", DYING, str(tiny / "policy"), str(tiny / "train.jsonl"), str(out)]
    proc = subprocess.run([*cmd, json.dumps(cfg)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 9, proc.stderr
    assert not (out / "adapter").exists()


def test_a_killed_sft_resumes_from_its_last_checkpoint(tiny, tmp_path):
    whole = train(tiny, tmp_path / "whole", checkpoint_steps=5)
    assert whole["optimizer_steps"] == 16 and whole["resumed_from"] is None
    killed_run(tiny, tmp_path / "run")
    work = tmp_path / "run" / "trainer"
    assert sorted(p.name for p in work.glob("checkpoint-*")) == ["checkpoint-10"]  # the last
    resumed = train(tiny, tmp_path / "run", checkpoint_steps=5)
    assert resumed["resumed_from"] == "checkpoint-10" and resumed["optimizer_steps"] == 16
    assert not list(work.glob("checkpoint-*"))  # removed once the adapter is saved
    a, b = adapter(tmp_path / "whole/adapter"), adapter(tmp_path / "run/adapter")
    assert a.keys() == b.keys()
    for key in a:  # the same training as the uninterrupted run
        assert np.allclose(a[key], b[key], atol=1e-6), key


def test_a_checkpoint_of_another_training_is_not_resumed(tiny, tmp_path):
    killed_run(tiny, tmp_path)
    assert list((tmp_path / "trainer").glob("checkpoint-*"))
    stats = train(tiny, tmp_path, cfg={**CFG, "lr": 5e-4})  # the config changed since
    assert stats["resumed_from"] is None and stats["optimizer_steps"] == 16


def test_completion_ends_with_eos_only_when_asked(tiny):
    tok = sft.load_tokenizer(str(tiny / "policy"), False, padding_side="right")
    target = tok(" Ok.", add_special_tokens=False)["input_ids"]
    for append, expected in ((True, [*target, tok.eos_token_id]), (False, target)):
        ex = sft.encode_example(tok, PROMPT.format(i=1), " Ok.", 48, 4, append_eos=append)
        assert [t for t, lab in zip(ex["input_ids"], ex["labels"]) if lab != sft.IGNORE] == expected


def test_global_batch_is_reached_by_gradient_accumulation(tiny, tmp_path):
    stats = train(tiny, tmp_path / "acc", cfg={**CFG, "global_batch_size": 8})
    assert stats["global_batch_size"] == 8 and stats["optimizer_steps"] == 4  # 16 x 2 / 8
    one = train(tiny, tmp_path / "one", cfg={**CFG, "batch_size": 1, "global_batch_size": 1})
    assert one["global_batch_size"] == 1 and one["optimizer_steps"] == 32  # the published
    assert sft.accumulation_steps({**CFG, "global_batch_size": 16}, world=4) == 2
    with pytest.raises(InputError, match=r"global_batch_size=6 is not a multiple of .* 2 x 4"):
        sft.accumulation_steps({**CFG, "global_batch_size": 6}, world=4)
    cfg = small_generation_config()
    cfg["generation"]["sft"].update(batch_size=2, global_batch_size=6)
    cfg["cluster"]["gpu"]["sft"]["gpus"] = 4
    with pytest.raises(InputError, match=r"generation\.sft\.global_batch_size=6"):
        checks.check_generation(cfg)  # at parse time, with the stage's GPUs


def published_csv(path: Path, prompts: list[str]) -> Path:
    """Demonstrations laid out as the published GPT-4 set: an 85-character instruction
    before each HH prompt in ``query``, the reply in ``response``."""
    prefix = "Answer as a helpful, honest assistant. Reply to the last turn of this dialogue:" + " "
    prefix = prefix.ljust(85)[:85]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["query", "response"])
        writer.writeheader()
        for i, prompt in enumerate(prompts):
            writer.writerow({"query": prefix + prompt, "response": f"Demonstration {i}."})
    return path


def test_sft_trains_on_demonstrations_read_as_the_published_set(tiny, tmp_path):
    source = published_csv(tmp_path / "demo_helpful.csv", [PROMPT.format(i=i) for i in range(6)])
    data = sft_data.data_settings(
        {
            "source": str(tmp_path / "demo_{task}.csv"),
            "prompt_field": "query",
            "completion_field": "response",
            "prompt_skip_chars": 85,
        },
        task="helpful",
    )
    assert data["source"] == str(source) and data["split"] == "train"
    examples = sft_data.sft_examples(prompts_file=None, data=data)
    assert examples[0] == {
        "id": "0",
        "prompt": PROMPT.format(i=0),
        "completion": " Demonstration 0.",
    }
    stats = train(tiny, tmp_path / "demo", cfg={**CFG, "data": data, "append_eos": False})
    assert stats["examples"] == 6 and (tmp_path / "demo/adapter/adapter_config.json").is_file()


def test_demonstrations_on_test_prompts_or_a_missing_file_are_refused(tiny, tmp_path):
    prompts = [PROMPT.format(i=0), PROMPT.format(i="t")]  # the second is the test prompt
    published_csv(tmp_path / "d.csv", prompts)
    data = {"source": str(tmp_path / "d.csv"), "prompt_field": "query"}
    data = sft_data.data_settings({**data, "completion_field": "response"}, "harmless")
    data["prompt_skip_chars"] = 85
    with pytest.raises(InputError, match=r"1 demonstrations are on test prompts .*test id t0"):
        train(
            tiny,
            tmp_path / "leak",
            cfg={**CFG, "data": data},
            test_prompts_file=tiny / "test.jsonl",
        )
    assert not (tmp_path / "leak").exists()  # refused before any training
    with pytest.raises(
        InputError, match=r"record 0 lacks \['prompt', 'completion'\] .*has \['query', 'response'\]"
    ):
        sft_data.demonstrations(sft_data.data_settings({"source": str(tmp_path / "d.csv")}, "x"))
    cfg = small_generation_config()
    cfg["generation"]["sft"]["data"] = {"source": "no/such/demonstrations_{task}.csv"}
    with pytest.raises(InputError, match=r"sft\.data\.source: no/such/demonstrations_harmless"):
        checks.check_generation(cfg)


# ------------------------------------------------------------- hf sampler vs vLLM


def test_hf_sampler_applies_no_top_k_like_vllm(tiny):
    """``generate`` filters to the 50 likeliest tokens unless told not to; vLLM's
    SamplingParams filter nothing by default. With the sampler's arguments every token
    keeps a finite score; without ``top_k`` only 50 do."""
    from transformers import AutoModelForCausalLM

    tok = sft.load_tokenizer(str(tiny / "policy"), False, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(tiny / "policy").eval()
    cfg = {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": 3}
    kwargs = sampling.hf_sampling_kwargs(cfg, 1, tok)
    enc = tok(["\n\nHuman: Hi\n\nAssistant:"], return_tensors="pt")

    def kept(**overrides):
        with torch.no_grad():
            out = model.generate(
                **enc, **{**kwargs, **overrides}, output_scores=True, return_dict_in_generate=True
            )
        return [int(torch.isfinite(s).sum()) for s in out.scores]

    vocab = model.config.vocab_size
    suppressed = len(kwargs["suppress_tokens"] or [])
    assert kwargs["top_k"] == 0
    assert all(n == vocab - suppressed for n in kept())
    no_top_k = {k: v for k, v in kwargs.items() if k != "top_k"}
    with torch.no_grad():
        out = model.generate(**enc, **no_top_k, output_scores=True, return_dict_in_generate=True)
    assert all(int(torch.isfinite(s).sum()) == 50 for s in out.scores)  # transformers' default


def test_the_published_sft_overlay_plans_sft_on_the_gpt4_demonstrations(tmp_path):
    """config/paper_sft_gpt4.yaml over a paper preset: the task's CSV is the SFT's
    input, read as the published set, on one GPU at global batch 1."""
    from snakemake.utils import update_config

    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    for name in ("paper_gemma-2b_helpful.yaml", "paper_sft_gpt4.yaml"):
        update_config(cfg, yaml.safe_load((ROOT / "config" / name).read_text()))
    (tmp_path / "data").mkdir()
    published_csv(tmp_path / "data/synthetic_hhrlhf_helpful_expert_gpt4.csv", [PROMPT])
    proc = run_snakemake(tmp_path, cfg, "-n", "results/generate/google--gemma-2b/sft/adapter")
    sft_job = re.search(r"^rule sft:\n((?:    .*\n)*)", proc.stdout, re.MULTILINE).group(1)
    assert "data/synthetic_hhrlhf_helpful_expert_gpt4.csv" in sft_job
    assert re.search(r"resources: .*\bnodes=1, gpu=1\b", sft_job)
