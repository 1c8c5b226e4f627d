"""Rounds of active reward modeling: draw candidates, select, annotate, train.

Round 0 annotates ``active.initial`` random pairs (shared by every strategy of a seed);
round ``r >= 1`` draws ``active.candidates`` pairs not annotated yet from the first
``orm.n_sample`` train prompts, lets the strategy choose its share of the budget from
them with the ensemble of round ``r - 1``, and has the simulated annotator
(:func:`embrm.rm.pairs.annotate`, the step-5 ``annotation_quality`` and
``reward_scale``) label them. The :class:`Annotator` is the only reader of golden
rewards, and only for the pairs it is asked to label. Each round's ensemble is
trained on every pair annotated so far, exactly as step 5 trains on its pairs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from embrm.active.selection import select
from embrm.data.arrays import load_split, open_array
from embrm.io.atomic import atomic_path
from embrm.io.errors import InputError
from embrm.rm.ensemble import load_ensemble, train_on_pairs
from embrm.rm.options import OrmSettings
from embrm.rm.pairs import Pairs, annotate, reward_scale
from embrm.rm.precision import resolve
from embrm.workflow.config import check_active_orm, pool_room, round_sizes

log = logging.getLogger(__name__)


class Annotator:
    """The simulated annotator: labels pairs from golden rewards it keeps to itself.

    ``rewards`` ``(N, K)``: the train split; the reward scale is that of the first
    ``orm.n_sample`` prompts, as in step 5. ``asked`` records every flat response id
    whose reward was read.
    """

    def __init__(self, rewards: np.ndarray, orm: OrmSettings):
        self._rewards = np.asarray(rewards[: orm.n_sample], dtype=np.float64)
        self.scale = reward_scale(self._rewards, orm.reward_scale)
        self.quality = orm.annotation_quality
        self.asked: set[int] = set()

    def label(self, first: np.ndarray, second: np.ndarray, rng) -> np.ndarray:
        """Labels ``(P,)`` float32, 1 where ``first`` won."""
        self.asked.update(first.tolist(), second.tolist())
        flat = self._rewards.reshape(-1)
        return annotate((flat[first] - flat[second]) / self.scale, self.quality, rng)


def pair_keys(first: np.ndarray, second: np.ndarray, n_ids: int) -> np.ndarray:
    """One int64 per unordered pair of flat response ids."""
    lo, hi = np.minimum(first, second), np.maximum(first, second)
    return lo.astype(np.int64) * n_ids + hi


def draw_pool(
    n_prompts: int, k: int, *, pool: str, size: int, exclude: np.ndarray, rng
) -> tuple[np.ndarray, np.ndarray]:
    """``size`` distinct random pairs (flat ids over ``n_prompts x k`` responses) whose
    keys are not in ``exclude``: two responses of one prompt (``within_prompt``), of two
    prompts (``cross_prompt``), or half of each (``both``)."""
    n_ids = n_prompts * k
    room = pool_room(n_prompts, k, pool)
    if pool == "cross_prompt" and n_prompts < 2:
        raise InputError("active.pool=cross_prompt needs orm.n_sample >= 2")
    if size + len(exclude) > room:
        raise InputError(
            f"active: {size} new candidate pairs do not fit the {room - len(exclude)} "
            f"{pool} pairs left among {n_prompts} prompts x {k} responses; lower "
            "active.candidates or active.budget, or raise orm.n_sample"
        )
    first, second = np.empty(0, np.int64), np.empty(0, np.int64)
    for _ in range(100):
        want = 2 * (size - len(first)) + 16
        a_prompt = rng.integers(0, n_prompts, want)
        a_col = rng.integers(0, k, want)
        cross = {"within_prompt": np.zeros(want, bool), "cross_prompt": np.ones(want, bool)}.get(
            pool, rng.random(want) < 0.5
        )
        b_prompt = np.where(
            cross, (a_prompt + rng.integers(1, max(n_prompts, 2), want)) % n_prompts, a_prompt
        )
        b_col = np.where(cross, rng.integers(0, k, want), (a_col + rng.integers(1, k, want)) % k)
        first = np.concatenate([first, a_prompt * k + a_col])
        second = np.concatenate([second, b_prompt * k + b_col])
        keys = pair_keys(first, second, n_ids)
        _, keep = np.unique(keys, return_index=True)
        keep = np.sort(keep[~np.isin(keys[keep], exclude)])
        first, second = first[keep], second[keep]
        if len(first) >= size:
            return first[:size], second[:size]
    raise InputError(f"active: could not draw {size} new {pool} candidate pairs")


def save_pairs(path, pairs: Pairs, added_in: np.ndarray, scale: float) -> None:
    """``pairs.npz``: ``first``, ``second`` (flat ids into the train split),
    ``label``, ``round`` (the round that added each pair), ``k`` and the annotator's
    ``scale``."""
    with atomic_path(path) as tmp:
        np.savez(
            tmp,
            first=pairs.first,
            second=pairs.second,
            label=pairs.label,
            round=added_in.astype(np.int64),
            k=np.int64(pairs.k),
            scale=np.float64(scale),
        )


def load_pairs(path) -> tuple[Pairs, np.ndarray, float]:
    """The pairs of a ``pairs.npz``, the round each was added in, the annotator's scale."""
    if not Path(path).is_file():
        raise InputError(f"{path}: pairs file not found")
    with np.load(path, allow_pickle=False) as f:
        pairs = Pairs(f["first"], f["second"], f["label"].astype(np.float32), int(f["k"]))
        return pairs, f["round"], float(f["scale"])


def initial_round(*, rewards, pairs_out, active_cfg: dict, orm: OrmSettings, seed: int) -> Pairs:
    """Round 0: ``active.initial`` random pairs, labelled by the annotator."""
    n_sample = check_active_orm(orm)
    rew = open_array(rewards, 2)
    annotator = Annotator(rew, orm)
    rng = np.random.default_rng([seed, 0, 11])
    first, second = draw_pool(
        n_sample,
        rew.shape[1],
        pool=active_cfg["pool"],
        size=active_cfg["initial"],
        exclude=np.empty(0, np.int64),
        rng=rng,
    )
    label = annotator.label(first, second, np.random.default_rng([seed, 0, 12]))
    pairs = Pairs(first, second, label, rew.shape[1])
    save_pairs(pairs_out, pairs, np.zeros(len(first)), annotator.scale)
    return pairs


def selection_round(
    *,
    embeddings,
    rewards,
    previous_pairs,
    previous_ckpt,
    pairs_out,
    active_cfg: dict,
    orm: OrmSettings,
    strategy: str,
    seed: int,
    round_index: int,
    precision: str = "fp32",
) -> Pairs:
    """Round ``round_index >= 1``: the strategy picks its share of the budget from a
    fresh pool, judged by the previous round's ensemble; the annotator labels them."""
    if round_index > active_cfg["rounds"]:
        raise InputError(f"active: round {round_index} > active.rounds={active_cfg['rounds']}")
    n_sample = check_active_orm(orm)
    precision = resolve(precision)
    emb = open_array(embeddings, 3)
    rew = open_array(rewards, 2)
    annotated, added_in, _ = load_pairs(previous_pairs)
    model, _ = load_ensemble(previous_ckpt, input_dim=emb.shape[-1])
    n_ids = n_sample * emb.shape[1]
    rng = np.random.default_rng([seed, round_index, 11])
    first, second = draw_pool(
        n_sample,
        emb.shape[1],
        pool=active_cfg["pool"],
        size=active_cfg["candidates"],
        exclude=pair_keys(annotated.first, annotated.second, n_ids),
        rng=rng,
    )
    n_pick = round_sizes(active_cfg)[round_index]
    chosen = select(
        strategy,
        n_pick=n_pick,
        candidates=(first, second),
        annotated=annotated,
        embeddings=emb,
        model=model,
        rng=rng,
        precision=precision,
    )
    annotator = Annotator(rew, orm)
    label = annotator.label(
        first[chosen], second[chosen], np.random.default_rng([seed, round_index, 12])
    )
    log.info("round %d (%s): %d of %d candidates chosen", round_index, strategy, n_pick, len(first))
    pairs = Pairs(
        np.concatenate([annotated.first, first[chosen]]),
        np.concatenate([annotated.second, second[chosen]]),
        np.concatenate([annotated.label, label]),
        annotated.k,
    )
    save_pairs(
        pairs_out, pairs, np.concatenate([added_in, np.full(n_pick, round_index)]), annotator.scale
    )
    return pairs


def train_round(
    *,
    embeddings,
    rewards,
    pairs,
    ckpt,
    summary_json,
    orm: OrmSettings,
    seed: int,
    task: str,
    precision,
) -> dict:
    """The ensemble of one round: step 5's training on every pair annotated so far."""
    check_active_orm(orm)
    emb, rew = load_split(embeddings, rewards)
    chosen, _, scale = load_pairs(pairs)
    return train_on_pairs(
        emb=emb,
        rew=rew,
        pairs=chosen,
        scale=scale,
        ckpt=ckpt,
        summary_json=summary_json,
        orm=orm,
        seed=seed,
        task=task,
        precision=precision,
    )
