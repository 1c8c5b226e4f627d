"""ArmoRM's two stages fitted together, saved without pickle, and applied to new responses.

Stage 1 (:mod:`.ridge`) maps a response embedding ``(D,)`` to J attribute scores; the
optional length decorrelation (:mod:`.decorrelation`) is a ``(J, J)`` transform of
them; stage 2 (:mod:`.gating`) mixes the transformed scores with weights of the
prompt's context. A fitted model is two files: ``heads.safetensors`` (ridge weight
``(D, J)`` and bias ``(J,)``, the transform, the gating's tensors) and ``heads.json``
(attribute names, the gating's shape, and what the fit chose: penalties, CV errors,
length penalties, the loss history). The raw attribute scores are what a server would
report per response beside the reward.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from embrm.io.atomic import atomic_path
from embrm.io.errors import InputError
from embrm.io.jsonio import read_json, write_json
from embrm.multi_objective.decorrelation import length_decorrelation
from embrm.multi_objective.gating import GatingNetwork, GatingOptions, fit_gating, gated_rewards
from embrm.multi_objective.ridge import ALPHAS, RidgeFit, fit_ridge_cv
from embrm.rm.pairs import Pairs

FORMAT = "embrm.multi_objective/1"
TENSORS, SETTINGS = "heads.safetensors", "heads.json"


@dataclass
class MultiObjectiveHeads:
    """Attribute heads, their length transform and the gating, ready to score."""

    names: list[str]
    weight: np.ndarray  # (D, J)
    bias: np.ndarray  # (J,)
    transform: np.ndarray  # (J, J); the identity without decorrelation
    gating: GatingNetwork
    report: dict  # what the fit chose (penalties, CV errors, length penalties, history)

    def attribute_scores(self, x: np.ndarray) -> np.ndarray:
        """Predicted ratings ``(R, J)`` of response embeddings ``(R, D)``."""
        return np.asarray(x, dtype=np.float64) @ self.weight + self.bias

    def score(self, x: np.ndarray, context: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(rewards (R,), mixing weights (R, J))`` of responses ``(R, D)`` whose
        prompts have contexts ``(R, C)``."""
        return gated_rewards(self.gating, self.attribute_scores(x), context, self.transform)


def fit_heads(
    *,
    x: np.ndarray,
    ratings: np.ndarray,
    group: np.ndarray,
    context: np.ndarray,
    pairs: Pairs,
    names: list[str],
    length: str | None = None,
    threshold: float = 0.03,
    alphas=ALPHAS,
    folds: int = 5,
    gating: GatingOptions | None = None,
) -> MultiObjectiveHeads:
    """Fit both stages on rated responses ``x`` ``(R, D)`` / ``ratings`` ``(R, J)`` of
    prompts ``group`` ``(R,)`` with contexts ``(R, C)``; the gating learns from ``pairs``
    over the same rows. ``length``: the attribute whose correlation the others lose
    (None: no decorrelation)."""
    if ratings.shape[1] != len(names):
        raise InputError(f"{ratings.shape[1]} rating columns but {len(names)} attribute names")
    if length is not None and length not in names:
        raise InputError(f"length attribute {length!r} is not one of the attributes {names}")
    gating = gating or GatingOptions()
    ridge: RidgeFit = fit_ridge_cv(x, ratings, groups=group, alphas=alphas, folds=folds)
    scores = ridge.predict(x)
    report = {
        "alpha": dict(zip(names, ridge.alpha.tolist())),
        "cv_mse": dict(zip(names, ridge.cv_mse.min(0).tolist())),
    }
    transform = np.eye(len(names))
    if length is not None:
        dec = length_decorrelation(scores, length=names.index(length), threshold=threshold)
        transform = dec["transform"]
        report["length_penalty"] = dict(zip(names, dec["penalty"].tolist()))
        report["length_spearman"] = dict(zip(names, dec["spearman"].tolist()))
    model, history = fit_gating(
        scores=scores, context=context, pairs=pairs, options=gating, transform=transform
    )
    report["gating"] = {
        **asdict(gating),
        "hidden_sizes": list(gating.hidden_sizes),
        "history": history,
        "scale": model.scale.item(),
    }
    return MultiObjectiveHeads(names, ridge.weight, ridge.bias, transform, model, report)


def save_heads(folder, heads: MultiObjectiveHeads) -> None:
    """Write ``heads.safetensors`` and ``heads.json`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {
        "ridge.weight": torch.tensor(heads.weight, dtype=torch.float32),
        "ridge.bias": torch.tensor(heads.bias, dtype=torch.float32),
        "transform": torch.tensor(heads.transform, dtype=torch.float32),
        **{f"gating.{k}": v.detach().clone() for k, v in heads.gating.state_dict().items()},
    }
    with atomic_path(folder / TENSORS) as tmp:
        save_file(tensors, str(tmp))
    hidden = [m.out_features for m in heads.gating.mlp if isinstance(m, torch.nn.Linear)][:-1]
    settings = {
        "format": FORMAT,
        "attributes": heads.names,
        "context_dim": heads.gating.mlp[0].in_features,
        "hidden_sizes": hidden,
        "temperature": heads.gating.temperature,
        "report": heads.report,
    }
    write_json(folder / SETTINGS, settings)


def load_heads(folder) -> MultiObjectiveHeads:
    """The heads saved by :func:`save_heads` in ``folder`` (tensors and JSON only)."""
    folder = Path(folder)
    settings = read_json(folder / SETTINGS)
    if settings.get("format") != FORMAT:
        raise InputError(f"{folder / SETTINGS}: not a multi-objective model ({FORMAT})")
    tensors = load_file(str(folder / TENSORS))
    names = settings["attributes"]
    gating = GatingNetwork(
        settings["context_dim"], len(names), settings["hidden_sizes"], settings["temperature"]
    )
    gating.load_state_dict(
        {k.removeprefix("gating."): v for k, v in tensors.items() if k.startswith("gating.")}
    )
    return MultiObjectiveHeads(
        names=names,
        weight=tensors["ridge.weight"].double().numpy(),
        bias=tensors["ridge.bias"].double().numpy(),
        transform=tensors["transform"].double().numpy(),
        gating=gating.eval(),
        report=settings["report"],
    )
