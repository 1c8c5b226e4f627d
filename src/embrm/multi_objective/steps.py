"""The workflow's multi-objective steps on rated responses (``data.source: ratings``).

Each split is three files of :func:`embrm.data.ratings.prepare_ratings` and step 4:
``{split}_ratings.jsonl`` (R rows: prompt, ``preference``), ``{split}_attributes.npy``
``(R, J)`` and ``{split}_embeddings.npy`` ``(R, 2, D)``, whose column 0 embeds the
prompt alone (the gating's context) and column 1 prompt + response (what the attribute
heads read). :func:`fit_multi_objective` fits both of ArmoRM's stages on the train split;
:func:`evaluate_multi_objective` judges them on the test split.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embrm.io.errors import InputError
from embrm.io.jsonio import read_jsonl, write_json
from embrm.multi_objective.evaluation import attribute_metrics, pair_accuracy, reward_metrics
from embrm.multi_objective.gating import GatingOptions
from embrm.multi_objective.heads import SETTINGS, TENSORS, fit_heads, load_heads, save_heads
from embrm.multi_objective.rating_pairs import rating_pairs

log = logging.getLogger(__name__)


@dataclass
class RatedSplit:
    """One split of rated responses, checked against each other."""

    x: np.ndarray  # (R, D) prompt + response embeddings
    context: np.ndarray  # (R, D) prompt-alone embeddings
    ratings: np.ndarray  # (R, J)
    preference: np.ndarray  # (R,) what orders a prompt's responses
    group: np.ndarray  # (R,) prompt id of each response


def read_split(*, ratings: str, attributes: str, embeddings: str, names: list[str]) -> RatedSplit:
    """The three files of one split, their row counts and widths checked."""
    rows = read_jsonl(ratings)
    values = np.load(attributes)
    emb = np.load(embeddings, mmap_mode="r")
    if values.shape != (len(rows), len(names)):
        raise InputError(
            f"{attributes}: shape {values.shape}, but {ratings} has {len(rows)} rows and "
            f"data.ratings.attributes names {len(names)} attributes"
        )
    if emb.ndim != 3 or emb.shape[:2] != (len(rows), 2):
        raise InputError(
            f"{embeddings}: shape {emb.shape}, expected ({len(rows)}, 2, D): the prompt "
            f"alone and prompt + response of each row of {ratings}"
        )
    group = np.unique([r["prompt"] for r in rows], return_inverse=True)[1]
    return RatedSplit(
        x=np.array(emb[:, 1], dtype=np.float32),
        context=np.array(emb[:, 0], dtype=np.float32),
        ratings=values.astype(np.float64),
        preference=np.array([r["preference"] for r in rows], dtype=np.float64),
        group=group,
    )


def gating_options(mo_cfg: dict, seed: int) -> GatingOptions:
    gating = mo_cfg["gating"]
    return GatingOptions(**{**gating, "hidden_sizes": tuple(gating["hidden_sizes"])}, seed=seed)


def fit_multi_objective(
    *,
    ratings: str,
    attributes: str,
    embeddings: str,
    tensors: str,
    settings: str,
    ratings_cfg: dict,
    mo_cfg: dict,
    seed: int,
) -> dict:
    """Fit the attribute heads, the optional length transform and the gating on the train
    split; the gating learns from ``data.ratings.pair_recipe`` pairs of the preference
    values. Writes ``heads.safetensors`` / ``heads.json`` (``tensors``, ``settings``, one
    folder); returns the fit's report."""
    folder = Path(tensors).parent
    if (Path(tensors).name, Path(settings)) != (TENSORS, folder / SETTINGS):
        raise InputError(f"the heads are written as {folder}/{TENSORS} and {SETTINGS}")
    names = list(ratings_cfg["attributes"])
    data = read_split(ratings=ratings, attributes=attributes, embeddings=embeddings, names=names)
    pairs, _, counts = rating_pairs(
        data.preference, data.group, recipe=ratings_cfg["pair_recipe"], seed=seed
    )
    log.info("gating pairs: %s", counts)
    heads = fit_heads(
        x=data.x,
        ratings=data.ratings,
        group=data.group,
        context=data.context,
        pairs=pairs,
        names=names,
        length=mo_cfg["length_attribute"],
        threshold=mo_cfg["length_threshold"],
        alphas=tuple(mo_cfg["alphas"]),
        folds=mo_cfg["cv_folds"],
        gating=gating_options(mo_cfg, seed),
    )
    heads.report["pairs"] = counts
    save_heads(folder, heads)
    return heads.report


def within_prompt_table(values: np.ndarray, group: np.ndarray) -> tuple[np.ndarray, int]:
    """``(table (N, K), K)``: the first K values of every prompt with at least K rows,
    K the fewest rows of a prompt with two or more (best-of-N needs a square table)."""
    counts = np.bincount(group)
    k = int(counts[counts >= 2].min()) if (counts >= 2).any() else 0
    if k < 2:
        return np.zeros((0, 0)), 0
    rows = [np.flatnonzero(group == g)[:k] for g in np.flatnonzero(counts >= k)]
    return values[np.stack(rows)], k


def evaluate_multi_objective(
    *,
    tensors: str,
    ratings: str,
    attributes: str,
    embeddings: str,
    results: str,
    ratings_cfg: dict,
    mo_cfg: dict,
    seed: int,
) -> dict:
    """Judge the heads of ``tensors``' folder on the test split: per attribute Spearman
    and MSE; as a reward, accuracy on the test split's pairs (same recipe as training)
    against uniform mixing of the same attribute scores, and within-prompt pairwise
    accuracy and best-of-N against the preference values. Writes ``results`` (JSON)."""
    heads = load_heads(Path(tensors).parent)
    data = read_split(
        ratings=ratings, attributes=attributes, embeddings=embeddings, names=heads.names
    )
    if data.x.shape[1] != heads.weight.shape[0]:
        raise InputError(
            f"{embeddings}: width {data.x.shape[1]}, the heads read {heads.weight.shape[0]}"
        )
    predicted = heads.attribute_scores(data.x)
    reward, weights = heads.score(data.x, data.context)
    uniform = (predicted @ heads.transform).mean(1)
    pairs, _, counts = rating_pairs(
        data.preference, data.group, recipe=ratings_cfg["pair_recipe"], seed=seed
    )
    out = {
        "responses": len(data.x),
        "prompts": int(data.group.max()) + 1,
        "attributes": attribute_metrics(predicted, data.ratings, heads.names),
        "pairs": counts,
        "pair_accuracy": pair_accuracy(reward, pairs) if len(pairs) else None,
        "uniform_pair_accuracy": pair_accuracy(uniform, pairs) if len(pairs) else None,
        "mean_weights": dict(zip(heads.names, weights.mean(0).tolist())),
    }
    table, k = within_prompt_table(np.stack([reward, data.preference], 1), data.group)
    if k:
        out["within_prompt"] = {
            "prompts": len(table),
            "k": k,
            **reward_metrics(
                table[..., 0],
                table[..., 1],
                ns=mo_cfg["bon_n"],
                subsets=mo_cfg["bon_subsets"],
                seed=seed,
            ),
        }
    write_json(results, out)
    return out
