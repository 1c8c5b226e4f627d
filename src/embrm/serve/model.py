"""``RewardModel``: text in, reward out, exactly as the run's step 4-8 computed it.

One instance is a TRL reward function (``rm(prompts=..., completions=..., **kwargs)``),
scores (prompt, response) lists and pairs, and backs the HTTP server and the CLI.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embrm.generation.embeddings import embed_texts, load_embedder
from embrm.generation.models import resolve
from embrm.io.errors import InputError
from embrm.io.jsonio import read_json
from embrm.serve import bundle as layout
from embrm.serve.heads import Heads, IsotonicMap
from embrm.serve.texts import response_text, trl_texts


class RewardModel:
    """A loaded bundle. Not an ``nn.Module`` on purpose: TRL calls plain callables with
    the texts, while it would feed a module its own tokenizer's ids."""

    def __init__(
        self,
        *,
        config: dict,
        tokenizer,
        embedder,
        heads: Heads,
        head: str | None = None,
        conservative: float = 0.0,
        batch_size: int | None = None,
    ):
        self.config = config
        self.tokenizer, self.embedder, self.heads = tokenizer, embedder, heads
        self.head = head or config["default_head"]
        if self.head not in layout.HEADS:
            raise InputError(f"head must be one of {', '.join(layout.HEADS)}: {self.head!r}")
        self.conservative = float(conservative)
        emb = config["embedder"]
        # a bundle written before the truncation setting existed truncated on the right
        self.embed_cfg = {
            "truncation": "right",
            **emb,
            "batch_size": batch_size or emb["batch_size"],
        }
        self.store_dtype = np.float16 if emb["dtype"] == "float16" else np.float32

    @classmethod
    def from_pretrained(
        cls, path, *, head: str | None = None, conservative: float = 0.0, batch_size=None
    ) -> RewardModel:
        """Load a bundle folder: safetensors, JSON and the embedder's own files only
        (no pickle, no remote code). ``conservative``: lambda of mean - lambda * std."""
        path = Path(path)
        config = layout.read_config(path)
        emb = config["embedder"]
        source = (
            str(path / layout.EMBEDDER_DIR) if emb["bundled"] else resolve(emb["name"], "embedder")
        )
        tokenizer, embedder = load_embedder(source, trust_remote_code=False)
        if embedder.config.hidden_size != config["input_dim"]:
            raise InputError(
                f"{path}: heads expect embeddings of dimension {config['input_dim']}, the "
                f"embedder {emb['name']!r} gives {embedder.config.hidden_size}"
            )
        d = config["input_dim"]
        heads = Heads(
            student=layout.load_head(path / layout.STUDENT, d, config["student"]["hidden_sizes"]),
            ensemble=layout.load_head(
                path / layout.ENSEMBLE, d, config["ensemble"]["hidden_sizes"]
            ),
            teacher_map=IsotonicMap.from_json(read_json(path / layout.MAPS["teacher"])),
            student_map=IsotonicMap.from_json(read_json(path / layout.MAPS["student"])),
            precision=config["precision"],
        )
        return cls(
            config=config,
            tokenizer=tokenizer,
            embedder=embedder,
            heads=heads,
            head=head,
            conservative=conservative,
            batch_size=batch_size,
        )

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embeddings ``(B, D)`` float32, rounded through the dtype step 4 stored them in."""
        out = np.zeros((len(texts), self.config["input_dim"]), dtype=np.float32)
        if texts:
            embed_texts(self.tokenizer, self.embedder, texts, self.embed_cfg, out)
        return out.astype(self.store_dtype).astype(np.float32)

    def rewards_and_spread(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Rewards ``(B,)`` of this instance's head and the ensemble's spread ``(B,)``."""
        return self.heads.rewards(self.embed(texts), self.head, self.conservative)

    def score_texts(self, texts: list[str]) -> np.ndarray:
        """Rewards ``(B,)`` of full texts already in step 4's format."""
        return self.rewards_and_spread(list(texts))[0]

    def score(self, prompts: list[str], responses: list[str]) -> list[float]:
        """One reward per (prompt, response)."""
        if len(prompts) != len(responses):
            raise InputError(f"{len(prompts)} prompts but {len(responses)} responses")
        return self.score_texts([response_text(p, r) for p, r in zip(prompts, responses)]).tolist()

    def prefer(self, prompt: str, a: str, b: str) -> float:
        """P(response ``a`` is preferred to ``b``) for ``prompt``, under the ensemble."""
        emb = self.embed([response_text(prompt, a), response_text(prompt, b)])
        return float(self.heads.preference(emb[:1], emb[1:])[0])

    def __call__(self, prompts=None, completions=None, **kwargs) -> list[float]:
        """TRL's reward-function signature: one float per completion; extra keyword
        arguments (dataset columns, trainer state, loggers) are accepted and ignored."""
        return self.score_texts(trl_texts(prompts, completions)).tolist()
