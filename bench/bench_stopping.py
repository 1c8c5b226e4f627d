"""Early-stopping rules compared on every check of every member, on every planted family.

For each planted family and annotation quality ``q`` in 10, 1 and 0.5, at the published
step-5 setup (``bench/paper_shape.yaml``, the pairs ``bench/bench_ranking.py`` trains
on), it trains the members once for ``--steps`` optimizer steps with no stopping and
records, at every check (``orm.checks_per_epoch``), each member's three validation
criteria (``loss``, ``accuracy``, ``calibrated_loss``, each on its own validation pairs)
and its scores of the first ``--test-responses`` responses of every test prompt. Members
never interact (each has its own batches and Adam state), so any rule that only picks a
check per member (criterion, per member or as one ensemble, first check after
``min_epochs``, patience) is evaluated exactly from that record: per-prompt Spearman of
the ensemble mean and of the first and worst member, pairwise accuracy. Prints one
table per point and a summary over the points, writes JSON; the records are cached.
Usage:

    python bench/bench_stopping.py [--families ...] [--qualities 10 1 0.5] [--steps 40]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from embrm.data.arrays import load_split
from embrm.data.synthetic import MODELS, generate
from embrm.evaluate.metrics import pairwise_accuracy, per_prompt_spearman
from embrm.rm.ensemble import PairData, golden_pairs, member_seeds, member_splits
from embrm.rm.losses import pair_loss
from embrm.rm.options import OrmSettings
from embrm.rm.precision import storage_dtype
from embrm.rm.scoring import score_array
from embrm.rm.stacked_mlp import StackedMLP
from embrm.rm.stopping import temperature_loss, validation_margins
from embrm.rm.training import fit

from bench_core import ROOT
from bench_ranking import QUALITIES, paper_config

CRITERIA = ("loss", "accuracy", "calibrated_loss")
SCOPES = ("member", "ensemble")
MIN_EPOCHS = (0, 1)


def planted_data(cfg: dict, folder: Path) -> Path:
    """The family's planted split (written once per family)."""
    files = {
        f"{split}_{kind}": folder / f"{split}_{kind}.npy"
        for split in ("train", "test")
        for kind in ("embeddings", "rewards")
    }
    if not files["test_rewards"].is_file():
        folder.mkdir(parents=True, exist_ok=True)
        s = cfg["data"]["synthetic"]
        keys = ("n_train", "n_test", "k_train", "k_test", "dim", "seed", "model")
        generate(**files, **{k: s[k] for k in keys})
    return folder


def record(cfg: dict, data: Path, steps: int, test_responses: int) -> dict:
    """Every check of an unstopped fit: criteria ``(C, M)`` and test scores ``(C, N, k, M)``."""
    orm = OrmSettings.of(cfg["orm"])
    emb, rew = load_split(data / "train_embeddings.npy", data / "train_rewards.npy")
    pairs, _ = golden_pairs(rew, orm, cfg["seed"])
    test_emb, test_rew = load_split(data / "test_embeddings.npy", data / "test_rewards.npy")
    test = np.ascontiguousarray(test_emb[:, :test_responses])
    seeds = member_seeds(cfg["seed"], orm.ensemble_number)
    pair_data = PairData(emb, pairs, storage_dtype("fp32"))
    loss = pair_loss(orm.pair_loss)
    val = member_splits(len(pairs), seeds, orm.val_fraction)
    rec: dict[str, list] = {name: [] for name in (*CRITERIA, "scores")}

    def every_criterion(model, mask):
        d, y, w = validation_margins(pair_data, model, mask, "fp32")
        n = w.sum(1)
        bce = F.binary_cross_entropy_with_logits(d, y, reduction="none")
        rec["loss"].append(((w * bce).sum(1) / n).numpy())
        rec["accuracy"].append((1 - (w * ((d > 0).double() == y).double()).sum(1) / n).numpy())
        rec["calibrated_loss"].append(temperature_loss(d, y, w).numpy())
        rec["scores"].append(score_array(model, test, cfg["evaluation"]["chunk_prompts"], "fp32"))
        return rec["loss"][-1]

    torch.manual_seed(cfg["seed"])
    model = StackedMLP(emb.shape[-1], orm.hidden_sizes, seeds)
    start = time.perf_counter()
    result = fit(
        model,
        train_mask=~val,
        val_mask=val,
        item_loss=lambda mdl, idx: loss(pair_data, mdl, idx),
        val_score=every_criterion,
        lr=orm.lr,
        batch_size=orm.batch_size,
        max_epochs=math.ceil(steps / math.ceil((~val).sum(1).max() / orm.batch_size)),
        checks_per_epoch=orm.checks_per_epoch,
        patience=10**9,
        seed=cfg["seed"],
        precision="fp32",
    )
    return {
        "step": np.array([h["step"] for h in result.history]),
        "steps_per_epoch": result.steps_per_epoch,
        "train_s": time.perf_counter() - start,
        "golden": np.asarray(test_rew[:, :test_responses], dtype=np.float64),
        **{k: np.array(v) for k, v in rec.items()},
    }


def chosen_checks(rec: dict, criterion: str, scope: str, min_epochs: int, patience: int):
    """The check index each member keeps under a rule: ``(M,)``. Mirrors
    :func:`embrm.rm.training.fit`: checks from step ``min_epochs * steps_per_epoch``,
    a stop after ``patience`` checks without improvement, the best check restored."""
    values = rec[criterion]
    if scope == "ensemble":
        values = np.repeat(values.mean(1, keepdims=True), values.shape[1], axis=1)
    first = min_epochs * int(rec["steps_per_epoch"])
    kept = []
    for member in values.T:
        best, best_check, since = np.inf, None, 0
        for check, value in enumerate(member):
            if rec["step"][check] < first:
                continue
            if value < best:
                best, best_check, since = value, check, 0
            elif (since := since + 1) >= patience:
                break
        kept.append(best_check)
    return np.array(kept)


def rule_row(rec: dict, kept: np.ndarray) -> dict:
    golden, scores = rec["golden"], rec["scores"]
    members = np.stack([scores[c, ..., m] for m, c in enumerate(kept)], -1)
    spearman = [per_prompt_spearman(members[..., m], golden) for m in range(len(kept))]
    mean = members.mean(-1)
    return {
        "ensemble": per_prompt_spearman(mean, golden),
        "first": spearman[0],
        "worst": min(spearman),
        "pairwise": pairwise_accuracy(mean, golden),
        "steps": [int(rec["step"][c]) for c in kept],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--qualities", nargs="+", type=float, default=QUALITIES)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--test-responses", type=int, default=50)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=ROOT / "bench/out/stopping")
    ap.add_argument("--json", type=Path, default=ROOT / "bench/out/bench_stopping.json")
    args = ap.parse_args()
    rules = [(c, s, e) for c in CRITERIA for s in SCOPES for e in MIN_EPOCHS]
    points = []
    for family in args.families:
        for quality in args.qualities:
            cfg = paper_config(family, quality)
            cache = args.workdir / f"{family}_q{quality:g}_{args.steps}_{args.test_responses}.npz"
            if not cache.is_file():
                data = planted_data(cfg, args.workdir / family)
                np.savez(cache, **record(cfg, data, args.steps, args.test_responses))
            rec = dict(np.load(cache))
            rows = {
                f"{c} {s} min_epochs={e}": rule_row(rec, chosen_checks(rec, c, s, e, args.patience))
                for c, s, e in rules
            }
            points.append({"family": family, "quality": quality, "rules": rows})
            print(f"\n{family} q={quality:g} (test: {args.test_responses} responses a prompt)")
            for name, r in rows.items():
                print(
                    f"  {name:38s} ensemble {r['ensemble']:.3f} first {r['first']:.3f} "
                    f"worst {r['worst']:.3f} pairwise {r['pairwise']:.3f} "
                    f"steps {min(r['steps'])}-{max(r['steps'])}"
                )
    print("\nmean over the points | ensemble | first | worst")
    for name in points[0]["rules"]:
        mean = [
            np.mean([p["rules"][name][k] for p in points]) for k in ("ensemble", "first", "worst")
        ]
        print(f"  {name:38s} " + " | ".join(f"{v:.3f}" for v in mean))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "points": points}, indent=1)
        + "\n"
    )


if __name__ == "__main__":
    main()
