"""Multi-objective heads behind the reward model: the gated reward of a text, and each
attribute's predicted rating and mixing weight, which the server reports in
``extra_logs``.

The heads read two embeddings per text, as the workflow trained them
(:mod:`embrm.multi_objective.steps`): the prompt alone (the gating's context) and
prompt + response (the attribute heads' input). A served text is in step 4's dialogue
form, so its prompt is the text up to the assistant turn after its last human turn
(:func:`prompt_part`): exactly the prompt text training embedded on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embrm.io.errors import InputError
from embrm.multi_objective.heads import MultiObjectiveHeads

KIND = "multi_objective"
HEAD = "gated"
HUMAN, ASSISTANT = "\n\nHuman:", "\n\nAssistant:"


def prompt_part(text: str) -> str:
    """The prompt of a step-4 text: up to and with the ``"\\n\\nAssistant:"`` that
    follows its last human turn (a response is cut at its next human turn, so that turn
    is the prompt's); a text without one is its own prompt."""
    at = text.find(ASSISTANT, max(text.rfind(HUMAN), 0))
    return text if at < 0 else text[: at + len(ASSISTANT)]


@dataclass
class GatedHeads:
    """The scorer of a multi-objective bundle, with the interface of
    :class:`embrm.serve.heads.Heads` over embeddings ``(B, 2, D)``: column 0 the prompt
    alone, column 1 prompt + response."""

    heads: MultiObjectiveHeads
    reward_range: tuple[float, float]  # the gated reward's range on the train split

    def rewards(self, emb: np.ndarray, head: str = HEAD, conservative: float = 0.0):
        """``(rewards (B,), extras (B, 2J))``: the gated reward, then each attribute's
        predicted rating and each attribute's mixing weight (see :func:`extra_logs`)."""
        if head != HEAD or conservative:
            raise InputError(
                f"a multi-objective bundle has one head, {HEAD!r}, and no ensemble spread "
                f"to be conservative with (got head {head!r}, conservative {conservative})"
            )
        ratings = self.heads.attribute_scores(emb[:, 1])
        reward, weights = self.heads.score(emb[:, 1], emb[:, 0])
        return reward.astype(np.float64), np.concatenate([ratings, weights], axis=1)

    def preference(self, emb_a: np.ndarray, emb_b: np.ndarray) -> np.ndarray:
        """P(a preferred to b) ``(B,)``: Bradley-Terry of the gated rewards (the gating's
        training loss)."""
        margin = self.rewards(emb_a)[0] - self.rewards(emb_b)[0]
        return 1.0 / (1.0 + np.exp(-margin))

    @property
    def golden_range(self) -> tuple[float, float]:
        return self.reward_range


def extra_logs(config: dict, extras: np.ndarray) -> dict:
    """The server's per-text logs of a bundle's second output: ``ensemble_std`` for an
    ensemble bundle; for a multi-objective one ``<attribute>`` (the predicted rating)
    and ``<attribute>_weight`` (its share of the gated reward) per attribute."""
    if config.get("kind") != KIND:
        return {"ensemble_std": np.asarray(extras).tolist()}
    names = config["attributes"]
    extras = np.asarray(extras).reshape(-1, 2 * len(names))
    return {
        **{name: extras[:, j].tolist() for j, name in enumerate(names)},
        **{f"{name}_weight": extras[:, len(names) + j].tolist() for j, name in enumerate(names)},
    }
