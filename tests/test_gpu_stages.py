"""The GPU half's entry points, sharding, parse-time refusals and golden-RM formats, on CPU.

vLLM cannot run here: the sampling rule is run for real through snakemake with a
stand-in ``vllm`` package (tests/stand_ins, on PYTHONPATH) whose engine, like vLLM's,
starts a ``spawn``-context process and refuses a parent that initialised CUDA.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from embrm.data import texts
from embrm.generation import checks, golden, sampling, sharded
from embrm.generation.embeddings import embed_shard
from embrm.generation.models import resolve_dtype
from embrm.generation.tiny_models import build, build_llama
from embrm.io.errors import InputError
from embrm.resources import gpu as resources

from conftest import ROOT, planned_jobs, run_snakemake, small_generation_config

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is local

STAND_INS = ROOT / "tests" / "stand_ins"
GPU_RULES = ("sft", "sample_shard", "annotate_shard", "embed_shard")
TINY = {"vocab_size": 600, "n_layer": 2, "n_embd": 128}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Tiny GPT-2 policy and golden RM, a tiny Llama, and 7 prompts x 3 responses."""
    d = tmp_path_factory.mktemp("tiny")
    build(d / "policy", d / "golden", seed=0, **TINY)
    build_llama(d / "llama", seed=0, **TINY)
    rows = [
        {
            "id": str(i),
            "prompt": f"\n\nHuman: How do I learn skill {i}?{' More.' * i}\n\nAssistant:",
            "responses": [f" Do {j} a day.\n\nHuman: ok" * (1 + (i + j) % 2) for j in range(3)],
        }
        for i in range(7)
    ]
    (d / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


def vllm_config() -> dict:
    """The small generation config with the tiny Llama sampled through vLLM."""
    cfg = small_generation_config()
    gen = cfg["generation"]
    gen["policy"] = "tiny-llama"
    gen["sft"]["lora_r"] = 8
    gen["sampling"]["backend"] = "vllm"
    gen["prompts"]["max_prompt_tokens"] = 200
    cfg["cluster"]["gpu"]["sample"]["gpus"] = 1
    return cfg


# --------------------------------------------------------------- spawn-safe vLLM sampling


@pytest.mark.workflow
def test_vllm_sampling_rule_survives_a_spawned_engine_process(tmp_path):
    """The sampling rule, run by snakemake, builds an engine that spawns a process; the
    parent has not initialised CUDA, and the engine gets vLLM's settings from config and
    its tensor-parallel size from the job's GPUs. No merged model is built for it."""
    cfg = vllm_config()
    cfg["generation"]["tiny"]["n_embd"] = 128  # 2 heads: tensor parallel over 2 GPUs
    cfg["cluster"]["gpu"]["sample"]["gpus"] = 2
    cfg["generation"]["sampling"]["gpu_memory_utilization"] = 0.6
    record = tmp_path / "vllm_calls.jsonl"
    target = "results/data/generate/tiny-llama/test_samples.jsonl"
    env = {"PYTHONPATH": f"{STAND_INS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    run_snakemake(tmp_path, cfg, target, env={**env, "VLLM_STAND_IN_RECORD": str(record)})
    gen = cfg["generation"]
    samples = [json.loads(line) for line in (tmp_path / target).open()]
    assert len(samples) == gen["prompts"]["max_test_prompts"]
    k = gen["sampling"]["k_test"]
    assert all(s["responses"] == [f" stand-in reply {j}" for j in range(k)] for s in samples)
    calls = [json.loads(line) for line in record.open()]
    engines = [c["engine"] for c in calls if "engine" in c]
    assert len(engines) == gen["sampling"]["shards"]
    adapter = "results/generate/tiny-llama/sft/adapter"  # paths are relative to the workdir
    assert (tmp_path / adapter / "adapter_config.json").is_file()  # the real SFT's LoRA
    assert not (tmp_path / adapter).with_name("merged").exists()  # vLLM needs no merged model
    for engine in engines:
        assert engine["model"] == "results/models/tiny-llama/policy"
        assert engine["dtype"] == "auto"  # vLLM picks bf16/fp16; nothing touched CUDA
        assert engine["enable_lora"] is True and engine["max_lora_rank"] == 8
        assert engine["tensor_parallel_size"] == 2  # the job's GPUs (cluster.gpu.sample.gpus)
        assert engine["max_model_len"] == 200 + gen["sampling"]["max_new_tokens"]
        assert engine["gpu_memory_utilization"] == 0.6
    assert {c["lora_path"] for c in calls if "generate" in c} == {adapter}


# ------------------------------------------------------------------ parse-time refusals


def test_vllm_refuses_the_tiny_gpt2_policy():
    cfg = vllm_config()
    cfg["generation"]["policy"] = "tiny"
    with pytest.raises(InputError, match=r"generation\.policy=tiny .*vLLM cannot serve"):
        checks.check_generation(cfg)
    cfg["generation"]["sampling"]["backend"] = "hf"
    checks.check_generation(cfg)  # the HF sampler serves it


@pytest.mark.parametrize("rank", [4, 12, 100])
def test_vllm_refuses_lora_ranks_it_does_not_serve(rank):
    cfg = vllm_config()
    cfg["generation"]["sft"]["lora_r"] = rank
    with pytest.raises(InputError, match=rf"generation\.sft\.lora_r={rank} .*\[1, 8, 16"):
        checks.check_generation(cfg)


def test_tensor_parallel_must_divide_the_heads_of_a_local_model(tiny):
    cfg = vllm_config()
    cfg["generation"]["policy"] = str(tiny / "llama")  # 2 heads of 64
    cfg["cluster"]["gpu"]["sample"]["gpus"] = 2
    checks.check_generation(cfg)
    cfg["cluster"]["gpu"]["sample"]["gpus"] = 4
    with pytest.raises(InputError, match=r"cluster\.gpu\.sample\.gpus=4 .*divide the 2 attention"):
        checks.check_generation(cfg)
    cfg["generation"]["policy"] = "tiny-llama"  # built by the workflow: heads from config
    cfg["generation"]["tiny"]["n_embd"] = 192  # 3 heads
    with pytest.raises(InputError, match=r"divide the 3 attention heads of tiny-llama"):
        checks.check_generation(cfg)


JOB_START = """
import sys
from embrm.generation.sampling import sample_shard
sample_shard(sys.argv[1], sys.argv[2], shard=0, shards=1, k=2, backend="vllm",
    merged_dir=None, base_dir=sys.argv[3], adapter_dir=None, seed=0,
    cfg={"temperature": 1.0, "top_p": 0.9, "max_new_tokens": 4},
    gpus=int(sys.argv[4]), gpu_memory_utilization=0.5)
"""


@pytest.mark.parametrize(
    "model, tp, message",
    [
        ("no-such-org/no-such-model", 1, "no-such-org/no-such-model: cannot read its config"),
        ("llama", 4, "sample.gpus=4 .* must divide the 2 attention heads"),
        ("llama", 2, None),
    ],
)
def test_sampling_job_checks_heads_before_building_the_engine(tiny, tmp_path, model, tp, message):
    """A hub id's heads are unknown at parse time: the job checks them before vLLM starts
    (offline here, so the hub id cannot be read: a clear message, not a vLLM trace)."""
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"id": "0", "prompt": "\\n\\nHuman: hi\\n\\nAssistant:"}\n')
    model = str(tiny / model) if model == "llama" else model
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(STAND_INS)}
    proc = subprocess.run(
        [sys.executable, "-c", JOB_START, str(prompts), str(tmp_path / "o.jsonl"), model, str(tp)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    if message is None:
        assert proc.returncode == 0, proc.stderr
        assert (tmp_path / "o.jsonl").is_file()
    else:
        assert proc.returncode != 0 and "InputError" in proc.stderr, proc.stderr
        assert re.search(message, proc.stderr), proc.stderr
        assert not (tmp_path / "o.jsonl").exists()


def test_refusals_stop_the_workflow_before_any_job(tmp_path):
    cfg = vllm_config()
    cfg["generation"]["sft"]["lora_r"] = 12
    proc = run_snakemake(tmp_path, cfg, "-n", check=False)
    assert proc.returncode != 0
    assert "generation.sft.lora_r=12" in proc.stdout + proc.stderr


# ------------------------------------------------------------ sharded annotation/embedding


GOLDEN_CFG = {
    "max_length": 64,
    "truncation": "keep_response",
    "batch_size": 2,
    "format": "raw",
    "dtype": "auto",
}
EMBED_CFG = {
    "pooling": "last",
    "normalize": False,
    "max_length": 64,
    "truncation": "keep_response",
    "batch_size": 2,
    "dtype": "float32",
}


def run_sharded(run, samples, model_dir, out_dir, cfg, shards, devices=None):
    """Every shard of ``run`` (``golden.annotate_shard`` or ``embed_shard``), gathered."""
    files = [out_dir / f"{shards}.{s}.npz" for s in range(shards)]
    for s, f in enumerate(files):
        run(
            samples_file=str(samples),
            out_file=str(f),
            model_path=str(model_dir),
            cfg=cfg,
            shard=s,
            shards=shards,
            devices=devices,
        )
    out = out_dir / f"gathered{shards}.npy"
    sharded.gather(shard_files=files, out_file=out)
    return np.load(out)


@pytest.mark.parametrize(
    "run, model, cfg",
    [(golden.annotate_shard, "golden", GOLDEN_CFG), (embed_shard, "llama", EMBED_CFG)],
    ids=["annotate", "embed"],
)
def test_sharded_runs_are_bit_identical_to_unsharded(tiny, tmp_path, run, model, cfg):
    args = (run, tiny / "samples.jsonl", tiny / model, tmp_path, cfg)
    whole = run_sharded(*args, shards=1)
    three = run_sharded(*args, shards=3)
    # two worker processes (spawned) inside each shard job, as on a 2-GPU node
    workers = run_sharded(*args, shards=2, devices=["cpu", "cpu"])
    assert whole.shape[:2] == (7, 3) and np.isfinite(whole).all()
    assert np.array_equal(whole, three) and np.array_equal(whole, workers)
    assert np.unique(whole.reshape(21, -1), axis=0).shape[0] == 21  # every text computed


def test_gather_refuses_a_missing_shard(tiny, tmp_path):
    files = [tmp_path / f"s{s}.npz" for s in range(3)]
    for s in range(3):
        golden.annotate_shard(
            samples_file=str(tiny / "samples.jsonl"),
            out_file=str(files[s]),
            model_path=str(tiny / "golden"),
            cfg=GOLDEN_CFG,
            shard=s,
            shards=3,
        )
    with pytest.raises(InputError, match="covered 0 times"):
        sharded.gather(shard_files=files[:2], out_file=tmp_path / "out.npy")


# ---------------------------------------------------------------------- golden-RM format


def test_raw_format_is_prompt_plus_stripped_response_as_published():
    assert texts.raw_text("\n\nHuman: hi\n\nAssistant:", "  Hello there. \n\nHuman: x") == (
        "\n\nHuman: hi\n\nAssistant:Hello there."
    )


CHAT = "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"


def test_chat_template_format_renders_the_dialogue_without_a_second_bos(tiny):
    tok, _ = golden.load_reward_model(str(tiny / "golden"), False)
    tok.chat_template = CHAT
    render = texts.chat_renderer(tok)
    prompt = "\n\nHuman: a\n\nAssistant: b\n\nHuman: c?\n\nAssistant:"
    text = render(prompt, " d \n\nHuman: more")
    assert text == "<|user|>a\n<|assistant|>b\n<|user|>c?\n<|assistant|>d\n"


def test_golden_format_and_dtype_reach_the_scores(tiny, tmp_path):
    """chat_template scores equal scoring the rendered texts one by one; raw differs."""
    tok, model = golden.load_reward_model(str(tiny / "golden"), False, dtype="float32")
    assert model.dtype == torch.float32
    chat_rm = tmp_path / "golden_chat"
    shutil.copytree(tiny / "golden", chat_rm)
    tok.chat_template = CHAT
    tok.save_pretrained(chat_rm)  # the template travels with the tokenizer
    rows = [json.loads(line) for line in (tiny / "samples.jsonl").open()]
    render = texts.chat_renderer(tok)
    expected = [
        golden.score_texts(tok, model, [render(r["prompt"], resp)], 1, 64)[0]
        for r in rows
        for resp in r["responses"]
    ]
    cfg = {**GOLDEN_CFG, "format": "chat_template", "dtype": "float32"}
    samples = tiny / "samples.jsonl"
    chat = run_sharded(golden.annotate_shard, samples, chat_rm, tmp_path, cfg, shards=2)
    raw = run_sharded(golden.annotate_shard, samples, tiny / "golden", tmp_path, GOLDEN_CFG, 1)
    assert np.allclose(chat.ravel(), expected, atol=1e-5)
    assert not np.allclose(chat, raw)


def test_dtype_setting_resolves_per_device():
    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu) == torch.float32  # a CPU computes in fp32
    assert resolve_dtype("bfloat16", cpu) == torch.float32
    assert resolve_dtype("float32", torch.device("cuda")) == torch.float32
    assert resolve_dtype("bfloat16", torch.device("cuda")) == torch.bfloat16


# ---------------------------------------------------------------------------- capacity


def preset(name: str) -> dict:
    from snakemake.utils import update_config

    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    update_config(cfg, yaml.safe_load((ROOT / "config" / name).read_text()))
    return cfg


def test_stage_memory_scales_with_gpus_and_runtime_with_data():
    cfg = preset("paper_gemma-7b_helpful.yaml")
    embed = cfg["cluster"]["gpu"]["embed"]
    res = resources.stage_resources(cfg, "embed")
    assert res["gpu"] == embed["gpus"] == 4
    assert res["mem_mb"] == 4 * embed["mem_mb_per_gpu"]
    assert res["threads"] == 4 * embed["cpus_per_gpu"]
    # 2000 test prompts in 5 shards x 500 responses = 200,000 texts per job
    texts = 2000 // 5 * 500
    assert resources.work_items(cfg, "embed", "test") == texts
    expected = embed["runtime"] + -(-texts // (4 * embed["throughput"]))
    assert resources.runtime_minutes(cfg, "embed", "test") == expected
    assert resources.runtime_minutes(cfg, "embed", "train") < expected  # 10 per prompt
    cfg["cluster"]["gpu"]["embed"]["throughput"] = None
    assert resources.runtime_minutes(cfg, "embed", "test") == embed["runtime"]
    sft = cfg["cluster"]["gpu"]["sft"]
    assert resources.runtime_minutes(cfg, "sft") == sft["runtime"] + -(
        -40000 * 2 // (sft["gpus"] * sft["throughput"])
    )


def test_max_model_len_defaults_to_the_prompt_limit_plus_new_tokens():
    gen = preset("paper_gemma-7b_helpful.yaml")["generation"]
    assert sampling.max_model_len(gen) == 450 + 128  # not gemma's 8192
    gen["sampling"]["max_model_len"] = 1024
    assert sampling.max_model_len(gen) == 1024
    gen["sampling"]["max_model_len"] = None
    gen["prompts"]["max_prompt_tokens"] = None
    assert sampling.max_model_len(gen) is None


# ------------------------------------------------------------------------- GPU smoke


def test_gpu_smoke_config_plans_all_eight_stages(tmp_path):
    proc = run_snakemake(tmp_path, preset("gpu_smoke.yaml"), "-n", "--resources", "gpu=1")
    out = proc.stdout + proc.stderr
    jobs = planned_jobs(out)
    assert jobs["build_tiny_llama"] == 1 and jobs["sample_shard"] == 2
    assert {"sft", "annotate_shard", "embed_shard", "train_orm", "validate_variants"} <= set(jobs)
    # every GPU job asks for one node and its GPU, which --resources gpu=N counts
    blocks = re.findall(r"^rule (\w+):\n((?:    .*\n)*)", out, re.MULTILINE)
    gpu_jobs = [body for rule, body in blocks if rule in GPU_RULES]
    assert len(gpu_jobs) == sum(jobs[rule] for rule in GPU_RULES)
    assert all(re.search(r"resources: .*\bnodes=1, gpu=1\b", body) for body in gpu_jobs)
    assert not (tmp_path / "results/generate/tiny-llama/sft/merged").exists()
    assert "sft/merged" not in out  # vLLM loads the adapter: no merged model is planned


def test_tiny_llama_loads_and_samples_with_the_hf_backend(tiny):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny / "llama")
    assert model.config.model_type == "llama" and model.config.num_attention_heads == 2
    cfg = {"temperature": 1.0, "top_p": 0.95, "max_new_tokens": 6, "batch_size": 2}
    prompts = ["\n\nHuman: Hi\n\nAssistant:", "\n\nHuman: How do I bake bread?\n\nAssistant:"]
    out = sampling.sample_hf(str(tiny / "llama"), prompts, 3, cfg, seed=0, trust_remote_code=False)
    assert [len(r) for r in out] == [3, 3] and all(isinstance(t, str) for r in out for t in r)


@pytest.mark.gpu
def test_gpu_smoke_runs_all_eight_stages_with_vllm(tmp_path):
    """On a GPU with envs/gpu.yaml: the smoke config end to end, vLLM for real."""
    run_snakemake(tmp_path, preset("gpu_smoke.yaml"), timeout=1800)
    assert (tmp_path / "results/validation_results.json").is_file()
