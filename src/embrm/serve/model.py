"""``RewardModel``: text in, reward out, exactly as the run's step 4-8 computed it.

One instance is a TRL reward function (``rm(prompts=..., completions=..., **kwargs)``),
scores (prompt, response) lists and pairs, and backs the HTTP server and the CLI. Every
entry point reads its input through :class:`~embrm.serve.texts.TextReader` (chat
templates -> step 4's dialogue text) and counts the formats it saw in ``formats_seen``.
:class:`~embrm.serve.process.ModelProcess` runs one in a child process for the server.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from embrm.generation.embeddings import embed_texts, load_embedder
from embrm.generation.models import DTYPES, device, dtype_for, resolve
from embrm.io.errors import InputError
from embrm.rm.precision import resolve as resolve_precision
from embrm.serve import bundle as layout
from embrm.serve import gated
from embrm.serve.chat import BUILT_IN, template_format
from embrm.serve.heads import TYING_HEADS, Heads
from embrm.serve.texts import FormatTally, TextReader, check_texts

log = logging.getLogger(__name__)
DTYPE_CHOICES = ("auto", *DTYPES)


def head_precision(bundle_precision: str, dtype: str) -> str:
    """The heads' CPU precision: ``auto`` keeps the bundle's (what its numbers were made
    with) where this CPU multiplies bf16 natively, else fp32; ``bfloat16`` -> bf16;
    ``float32`` and ``float16`` (no fp16 autocast on CPU) -> fp32."""
    if dtype == "bfloat16":
        return "bf16"
    if dtype != "auto" or bundle_precision == "fp32":
        return "fp32"
    native = resolve_precision("auto")
    if native != bundle_precision:
        log.warning(
            "the bundle's heads ran in %s; this CPU has no native bf16, so they run in "
            "fp32 (rewards differ by bf16 rounding, about 1e-2)",
            bundle_precision,
        )
    return native


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
        if self.head not in config["heads"]:
            raise InputError(f"head must be one of {', '.join(config['heads'])}: {self.head!r}")
        # multi-objective heads also read the prompt's own embedding (embrm.serve.gated)
        self.gated = config.get("kind") == gated.KIND
        if self.gated and conservative:
            raise InputError(
                f"conservative={conservative}: a multi-objective bundle has no ensemble "
                "spread to be conservative with"
            )
        if self.head in TYING_HEADS:
            log.warning(
                "head %s is a staircase: distinct responses in one flat step get the same "
                "reward (zero spread in a GRPO group); %s_strict never ties",
                self.head,
                self.head,
            )
        self.conservative = float(conservative)
        emb = config["embedder"]
        # a bundle written before the truncation setting existed truncated on the right
        self.embed_cfg = {
            "truncation": "right",
            **emb,
            "batch_size": batch_size or emb["batch_size"],
        }
        self.store_dtype = np.float16 if emb["dtype"] == "float16" else np.float32
        own = template_format(tokenizer)
        self.reader = TextReader((own, *BUILT_IN) if own else BUILT_IN)
        self.formats_seen = FormatTally()

    @classmethod
    def from_pretrained(
        cls,
        path,
        *,
        head: str | None = None,
        conservative: float = 0.0,
        batch_size=None,
        device: str | None = None,
        dtype: str = "auto",
    ) -> RewardModel:
        """Load a bundle folder: safetensors, JSON and the embedder's own files only
        (no pickle, no remote code). ``conservative``: lambda of mean - lambda * std;
        ``device``: where the embedder runs (``cpu``, ``cuda``, ``cuda:1``; default the
        first GPU, else the CPU); ``dtype``: the embedder's (``auto``: float32 on CPU,
        bf16/fp16 on GPU) and, for ``float32``/``bfloat16``, the heads' precision."""
        if dtype not in DTYPE_CHOICES:
            raise InputError(f"dtype must be one of {', '.join(DTYPE_CHOICES)}: {dtype!r}")
        path = Path(path)
        config = layout.read_config(path)
        emb = config["embedder"]
        source = (
            str(path / layout.EMBEDDER_DIR) if emb["bundled"] else resolve(emb["name"], "embedder")
        )
        dev = _device(device)
        tokenizer, embedder = load_embedder(source, False, dev, dtype)
        wanted = dtype_for(dev) if dtype == "auto" else DTYPES[dtype]
        embedder = embedder.to(wanted)  # a CPU load is float32 whatever was asked
        if embedder.config.hidden_size != config["input_dim"]:
            raise InputError(
                f"{path}: heads expect embeddings of dimension {config['input_dim']}, the "
                f"embedder {emb['name']!r} gives {embedder.config.hidden_size}"
            )
        heads = layout.load_heads(path, config, head_precision(config["precision"], dtype))
        return cls(
            config=config,
            tokenizer=tokenizer,
            embedder=embedder,
            heads=heads,
            head=head,
            conservative=conservative,
            batch_size=batch_size,
        )

    @property
    def device(self) -> torch.device:
        return self.embedder.device

    @property
    def dtype(self) -> torch.dtype:
        return self.embedder.dtype

    @property
    def golden_range(self) -> tuple[float, float]:
        return self.heads.golden_range

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embeddings ``(B, D)`` float32, rounded through the dtype step 4 stored them in."""
        out = np.zeros((len(texts), self.config["input_dim"]), dtype=np.float32)
        if texts:
            embed_texts(self.tokenizer, self.embedder, texts, self.embed_cfg, out)
        return out.astype(self.store_dtype).astype(np.float32)

    def head_inputs(self, texts: list[str]) -> np.ndarray:
        """What the heads read: the texts' embeddings ``(B, D)``; for multi-objective
        heads their prompts' and their own ``(B, 2, D)``."""
        if not self.gated:
            return self.embed(texts)
        emb = self.embed([gated.prompt_part(t) for t in texts] + list(texts))
        return np.stack([emb[: len(texts)], emb[len(texts) :]], axis=1)

    def rewards_and_spread(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Rewards ``(B,)`` of this instance's head and the ensemble's spread ``(B,)`` (a
        multi-objective bundle: the attribute ratings and weights ``(B, 2J)``) for texts
        already in step 4's format."""
        return self.heads.rewards(self.head_inputs(texts), self.head, self.conservative)

    def _score_pairs(self, prompts: list, responses: list[str]) -> tuple[np.ndarray, np.ndarray]:
        texts, names = self.reader.pairs(prompts, responses)
        self.formats_seen.add(names)
        return self.rewards_and_spread(texts)

    def score_texts(self, texts: list[str]) -> np.ndarray:
        """Rewards ``(B,)`` of whole exchanges (prompt + response, any known format)."""
        check_texts(texts, "texts")
        return self._score_pairs([None] * len(texts), list(texts))[0]

    def score(self, prompts: list[str], responses: list[str]) -> list[float]:
        """One reward per (prompt, response)."""
        if len(prompts) != len(responses):
            raise InputError(f"{len(prompts)} prompts but {len(responses)} responses")
        check_texts(prompts, "prompts")
        check_texts(responses, "responses")
        return self._score_pairs(list(prompts), list(responses))[0].tolist()

    def prefer(self, prompt: str, a: str, b: str) -> float:
        """P(response ``a`` is preferred to ``b``) for ``prompt``, under the ensemble."""
        check_texts([prompt, a, b], "prompt, a, b")
        emb = self.head_inputs([self.reader.pair(prompt, a)[0], self.reader.pair(prompt, b)[0]])
        return float(self.heads.preference(emb[:1], emb[1:])[0])

    def __call__(self, prompts=None, completions=None, **kwargs) -> list[float]:
        """TRL's reward-function signature: one float per completion. The ensemble's
        mean spread (a multi-objective bundle: each attribute's mean rating and weight)
        and the share of texts in no known format go to TRL's ``log_metric`` (and each
        completion's values to ``log_extra``) when given; other keyword arguments
        (dataset columns, trainer state) are ignored."""
        texts, names = self.reader.trl(prompts, completions)
        check_texts(texts, "completions")
        self.formats_seen.add(names)
        rewards, spread = self.rewards_and_spread(texts)
        logs = gated.extra_logs(self.config, spread)
        if kwargs.get("log_metric") is not None:
            for name, values in logs.items():
                kwargs["log_metric"](f"reward_model/{name}", float(np.mean(values)))
            unknown = names.count(None) / max(len(names), 1)
            kwargs["log_metric"]("reward_model/unrecognised_format", unknown)
        if kwargs.get("log_extra") is not None:
            for name, values in logs.items():
                kwargs["log_extra"](name, values)
        return rewards.tolist()


def _device(name: str | None) -> torch.device:
    if name is None:
        return device()
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {name!r}: no CUDA device is visible")
    return dev
