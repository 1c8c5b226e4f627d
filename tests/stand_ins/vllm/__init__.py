"""A stand-in for vllm 0.33 where no GPU exists: the parts embrm calls, with the real
signatures (``LLM(model, *, ...)``, ``LLM.generate(prompts, sampling_params, *,
lora_request=None)``, ``SamplingParams(n=..., temperature=..., top_p=...,
max_tokens=...)``), returning objects shaped like ``RequestOutput``/``CompletionOutput``.

Like vLLM's engine, ``LLM`` starts its engine-core process: with ``spawn`` always here
(vLLM spawns whenever CUDA is already initialised), so a caller whose ``__main__``
re-runs on import fails as it would on a GPU node. It refuses a parent that has
initialised CUDA, and it appends the engine's keyword arguments as JSON to the file
named by ``VLLM_STAND_IN_RECORD`` so a test can check them.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from dataclasses import dataclass, field


def _engine_core(ready) -> None:
    ready.put("ready")


@dataclass
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int | None = 16


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list = field(default_factory=list)
    cumulative_logprob: float | None = None
    logprobs: list | None = None
    finish_reason: str | None = "length"


@dataclass
class RequestOutput:
    request_id: str
    prompt: str
    prompt_token_ids: list
    prompt_logprobs: list | None
    outputs: list
    finished: bool = True


class LLM:
    def __init__(self, model: str, *, trust_remote_code: bool = False, **kwargs) -> None:
        import torch

        if torch.cuda.is_initialized():
            raise RuntimeError("stand-in vllm: CUDA was initialised before the engine")
        ctx = multiprocessing.get_context("spawn")
        ready = ctx.Queue()
        core = ctx.Process(target=_engine_core, args=(ready,))
        core.start()
        core.join(120)
        if core.exitcode != 0:
            raise RuntimeError(f"stand-in vllm: engine core died (exit code {core.exitcode})")
        ready.get(timeout=10)
        self.args = {"model": model, "trust_remote_code": trust_remote_code, **kwargs}
        record = os.environ.get("VLLM_STAND_IN_RECORD")
        if record:
            with open(record, "a") as f:
                f.write(json.dumps({"engine": self.args}) + "\n")

    def generate(self, prompts, sampling_params=None, *, use_tqdm=True, lora_request=None):
        record = os.environ.get("VLLM_STAND_IN_RECORD")
        if record:
            with open(record, "a") as f:
                lora = None if lora_request is None else lora_request.lora_path
                f.write(json.dumps({"generate": len(prompts), "lora_path": lora}) + "\n")
        return [
            RequestOutput(
                request_id=str(i),
                prompt=prompt,
                prompt_token_ids=[],
                prompt_logprobs=None,
                outputs=[
                    CompletionOutput(index=j, text=f" stand-in reply {j}")
                    for j in range(sampling_params.n)
                ],
            )
            for i, prompt in enumerate(prompts)
        ]
