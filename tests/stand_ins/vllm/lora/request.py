"""Stand-in of vllm.lora.request (vllm 0.33): the fields embrm passes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LoRARequest:
    lora_name: str
    lora_int_id: int
    lora_path: str = ""
