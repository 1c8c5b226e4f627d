"""Refuse at parse time what a GPU job would refuse hours later on a node.

Each check names the config key to change: requests above the node maxima, an SFT
data file that is not there, a global batch the SFT's GPUs cannot split, and what vLLM
cannot serve. What cannot be known before the job (the attention heads of a hub model
that is not available offline) is checked again when the sampling job starts, before
the engine is built.
"""

from __future__ import annotations

import json
from pathlib import Path

from embrm.generation import sft_data
from embrm.io.errors import InputError
from embrm.resources.gpu import check_requests

# vllm 0.33: vllm.config.lora.MaxLoRARanks
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def tiny_llama_heads(n_embd: int) -> int:
    """The built tiny Llama's attention heads: 64 dimensions each (see tiny_models)."""
    return max(1, n_embd // 64)


def attention_heads(model: str, trust_remote_code: bool = False) -> int:
    """The model's attention heads, from its config (a local folder, or the hub)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(model, trust_remote_code=trust_remote_code)
    except OSError as exc:
        raise InputError(
            f"generation.policy={model}: cannot read its config.json to check vLLM's "
            f"tensor-parallel size against its attention heads ({exc})"
        ) from exc
    return config.num_attention_heads


def check_tensor_parallel(heads: int, tensor_parallel_size: int, model: str) -> None:
    """vLLM splits the heads over the tensor-parallel GPUs: the count must divide them."""
    if heads % tensor_parallel_size:
        raise InputError(
            f"config key cluster.gpu.sample.gpus={tensor_parallel_size} (vLLM's tensor-"
            f"parallel size) must divide the {heads} attention heads of {model}"
        )


def known_heads(gen: dict) -> int | None:
    """The policy's attention heads if known before any job: the built tiny Llama, or a
    local folder with a config.json; None for a hub id (checked when the job starts)."""
    if gen["policy"] == "tiny-llama":
        return tiny_llama_heads(gen["tiny"]["n_embd"])
    config_file = Path(gen["policy"]) / "config.json"
    if config_file.is_file():
        config = json.loads(config_file.read_text())
        return config.get("num_attention_heads", config.get("n_head"))
    return None


def check_generation(config: dict, repo_dir: str | None = None) -> None:
    """Raise InputError naming the key when the GPU jobs cannot run this setup (a local
    SFT data file is looked up in the working directory, else in ``repo_dir``)."""
    from embrm.generation.sft import accumulation_steps

    check_requests(config)
    gen = config["generation"]
    if config["data"]["source"] != "generate":
        return
    sft_data.local_source(sft_data.data_settings(gen["sft"]["data"], config["task"], repo_dir))
    accumulation_steps(gen["sft"], config["cluster"]["gpu"]["sft"]["gpus"])
    if gen["sampling"]["backend"] != "vllm":
        return
    if gen["policy"] == "tiny":
        raise InputError(
            "config key generation.policy=tiny is a GPT-2, which vLLM cannot serve with a "
            "LoRA adapter: set generation.sampling.backend: hf, or policy: tiny-llama "
            "(as config/gpu_smoke.yaml does)"
        )
    if gen["sft"]["lora_r"] not in VLLM_LORA_RANKS:
        raise InputError(
            f"config key generation.sft.lora_r={gen['sft']['lora_r']} is not a LoRA rank "
            f"vLLM serves (backend: vllm): use one of {list(VLLM_LORA_RANKS)}"
        )
    heads = known_heads(gen)
    if heads is not None:
        check_tensor_parallel(heads, config["cluster"]["gpu"]["sample"]["gpus"], gen["policy"])
