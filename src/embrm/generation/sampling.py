"""Step 2: K responses per prompt, with vLLM on a cluster or ``generate`` anywhere.

``vllm``: one request per prompt with ``SamplingParams(n=K)`` (the published code sent
the same prompt K times), the LoRA adapter through ``LoRARequest`` onto the base model,
tensor parallel over the job's GPUs (``gpus``: the rule's request). Nothing here touches
CUDA before the engine is built (``dtype="auto"`` lets vLLM pick bf16 or fp16 from
NVML): an initialised CUDA makes vLLM start its engine process with ``spawn``, which
needs a guarded ``__main__`` (the rule runs ``python -m embrm.generation.entry``, so it
has one). ``hf``: batched ``generate`` on the merged SFT model with
``num_return_sequences=K``, left padding (with position ids derived from the mask by
``generate``) and length-sorted batches. Both draw from the same distribution: vLLM's
``SamplingParams`` apply no top-k unless asked, and ``generate`` gets ``top_k=0``
explicitly (its default is 50). vLLM is imported only when asked for.
"""

from __future__ import annotations

import logging

import torch

from embrm.generation.checks import attention_heads, check_tensor_parallel
from embrm.generation.models import device, dtype_for, load_tokenizer
from embrm.io.errors import InputError
from embrm.io.jsonio import read_jsonl, write_jsonl

log = logging.getLogger(__name__)


def shard_rows(rows: list, shard: int, shards: int) -> list:
    """Every ``shards``-th prompt starting at ``shard``: shards of equal work."""
    return rows[shard::shards]


def hf_sampling_kwargs(cfg: dict, k: int, tok) -> dict:
    """``generate``'s sampling arguments, as vLLM's ``SamplingParams`` of :func:`sample_vllm`
    sample: temperature and top-p only (``top_k=0`` turns off ``generate``'s default 50)."""
    # a random tiny model may sample the pad token; never when pad is EOS (no pad token)
    suppress = [tok.pad_token_id] if tok.pad_token_id != tok.eos_token_id else None
    return {
        "do_sample": True,
        "temperature": cfg["temperature"],
        "top_p": cfg["top_p"],
        "top_k": 0,
        "max_new_tokens": cfg["max_new_tokens"],
        "num_return_sequences": k,
        "pad_token_id": tok.pad_token_id,
        "suppress_tokens": suppress,
    }


def sample_hf(
    model_dir: str, prompts: list[str], k: int, cfg: dict, seed: int, trust_remote_code: bool
) -> list[list[str]]:
    from transformers import AutoModelForCausalLM

    dev = device()
    tok = load_tokenizer(model_dir, trust_remote_code, padding_side="left")
    model = (
        AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=dtype_for(dev), trust_remote_code=trust_remote_code
        )
        .to(dev)
        .eval()
    )
    sampling = hf_sampling_kwargs(cfg, k, tok)
    torch.manual_seed(seed)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list = [None] * len(prompts)
    for start in range(0, len(order), cfg["batch_size"]):
        idx = order[start : start + cfg["batch_size"]]
        enc = tok([prompts[i] for i in idx], return_tensors="pt", padding=True).to(dev)
        with torch.no_grad():
            gen = model.generate(**enc, **sampling)
        texts = tok.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        for j, i in enumerate(idx):
            out[i] = texts[j * k : (j + 1) * k]
    return out


def max_model_len(gen: dict) -> int | None:
    """vLLM's context length: ``sampling.max_model_len``, else the prompt limit plus the
    new tokens (not the model's own maximum, 8192 for gemma, whose KV cache a 24 GB card
    cannot hold next to gemma-7b); None (the model's maximum) without a prompt limit."""
    sampling, limit = gen["sampling"], gen["prompts"]["max_prompt_tokens"]
    if sampling["max_model_len"] is not None:
        return sampling["max_model_len"]
    return None if limit is None else limit + sampling["max_new_tokens"]


def vllm_engine_args(
    *,
    model_dir: str,
    adapter_dir: str | None,
    seed: int,
    trust_remote_code: bool,
    max_lora_rank: int,
    tensor_parallel_size: int,
    max_model_len: int | None,
    gpu_memory_utilization: float,
) -> dict:
    """Keyword arguments of ``vllm.LLM`` (checked against vllm 0.33's signature)."""
    return {
        "model": model_dir,
        "enable_lora": adapter_dir is not None,
        "max_lora_rank": max_lora_rank,
        "dtype": "auto",  # bf16 on compute capability >= 8, else fp16; no CUDA call here
        "tensor_parallel_size": tensor_parallel_size,
        "max_model_len": max_model_len,
        "gpu_memory_utilization": gpu_memory_utilization,
        "seed": seed,
        "trust_remote_code": trust_remote_code,
    }


def sample_vllm(
    prompts: list[str], k: int, cfg: dict, engine: dict, adapter_dir: str | None
) -> list[list[str]]:
    """K responses per prompt; ``engine``: :func:`vllm_engine_args`."""
    try:
        from vllm import LLM, SamplingParams
        from vllm.lora.request import LoRARequest
    except ImportError as exc:
        raise InputError(
            "generation.sampling.backend=vllm but vllm is not installed here: use the GPU "
            "environment (envs/gpu.yaml, or `pip install -e .[gpu]`) or set backend: hf"
        ) from exc
    heads = attention_heads(engine["model"], engine["trust_remote_code"])
    check_tensor_parallel(heads, engine["tensor_parallel_size"], engine["model"])
    llm = LLM(**engine)
    params = SamplingParams(
        n=k,
        temperature=cfg["temperature"],
        top_p=cfg["top_p"],
        max_tokens=cfg["max_new_tokens"],
    )  # no per-request seed: it would give every prompt the same random stream
    lora = LoRARequest("sft", 1, adapter_dir) if adapter_dir else None
    results = llm.generate(prompts, params, lora_request=lora)
    return [[o.text for o in r.outputs] for r in results]


def sample_shard(
    prompts_file,
    out_file,
    *,
    shard: int,
    shards: int,
    k: int,
    backend: str,
    merged_dir: str | None,
    base_dir: str,
    adapter_dir: str | None,
    cfg: dict,
    seed: int,
    trust_remote_code: bool = False,
    max_lora_rank: int = 64,
    max_model_len: int | None = None,
    gpus: int = 1,
    gpu_memory_utilization: float = 0.9,
) -> int:
    """Sample one shard of a split's prompts to JSON lines ``{"id", "prompt", "responses"}``
    (vLLM: tensor parallel over ``gpus`` GPUs, ``gpu_memory_utilization`` of each)."""
    rows = shard_rows(read_jsonl(prompts_file), shard, shards)
    prompts = [r["prompt"] for r in rows]
    if backend == "vllm":
        engine = vllm_engine_args(
            model_dir=base_dir,
            adapter_dir=adapter_dir,
            seed=seed + shard,
            trust_remote_code=trust_remote_code,
            max_lora_rank=max_lora_rank,
            tensor_parallel_size=gpus,
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
        )
        responses = sample_vllm(prompts, k, cfg, engine, adapter_dir)
    elif backend == "hf":
        if merged_dir is None:
            raise InputError("generation.sampling.backend=hf needs the merged SFT model")
        responses = sample_hf(merged_dir, prompts, k, cfg, seed + shard, trust_remote_code)
    else:
        raise InputError(f"generation.sampling.backend must be vllm or hf, got {backend!r}")
    write_jsonl(
        out_file,
        [
            {"id": r["id"], "prompt": r["prompt"], "responses": resp}
            for r, resp in zip(rows, responses)
        ],
    )
    log.info("shard %d/%d: %d prompts x %d responses", shard, shards, len(rows), k)
    return len(rows)


def gather_shards(prompts_file, shard_files, out_file) -> int:
    """Join shards back into the prompts' original order, checking nothing is missing."""
    by_id = {}
    for path in shard_files:
        for row in read_jsonl(path):
            by_id[row["id"]] = row
    rows = read_jsonl(prompts_file)
    missing = [r["id"] for r in rows if r["id"] not in by_id]
    if missing:
        raise InputError(f"{len(missing)} prompts missing from the shards (first id {missing[0]})")
    write_jsonl(out_file, [by_id[r["id"]] for r in rows])
    return len(rows)
