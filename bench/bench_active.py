"""Benchmark one round of active selection at its target shape.

50,000 candidate pairs (cross-prompt, ``--prompts`` x 10 responses of the ``rough``
planted data, D = 2048) judged by a StackedMLP ensemble of ``--members`` members with
hidden sizes 1024, 512 (last hidden layer H = 512), trained for ``--epochs`` epochs on
2,000 annotated pairs so its features are those of a fitted model. Times, per strategy:
the ensemble's forward pass over the candidates (score gaps for ``uncertainty``,
last-hidden-layer features of the pool and the annotated pairs for ``dopt`` and
``coreset``) and the choice itself (``dopt``: one inverse per member, then the blocked
lazy greedy search with rank-one updates; ``coreset``: projection, then greedy
k-center), for each ``--picks``. ``--precision auto`` runs the forward pass in bf16
where the CPU has native bf16. Prints a table and writes JSON. Usage:

    python bench/bench_active.py [--members 5] [--picks 500 2000] [--precision auto] [--out F]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from embrm.active.coreset import k_center, project, random_projection
from embrm.active.dopt import greedy_logdet, information, ridge_of
from embrm.active.features import fisher_rows, pair_gaps
from embrm.active.rounds import draw_pool, pair_keys
from embrm.active.selection import pool_and_annotated_features
from embrm.data.synthetic import write_split
from embrm.rm.ensemble import load_ensemble, train_on_pairs
from embrm.rm.options import OrmSettings
from embrm.rm.pairs import Pairs, annotate
from embrm.rm.precision import resolve

from bench_core import ROOT

K = 10


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=5000)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--candidates", type=int, default=50_000)
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--picks", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--precision", default="auto", help="fp32, bf16 or auto (bf16 where fast)")
    parser.add_argument("--out", type=Path, default=Path("bench_active.json"))
    args = parser.parse_args()
    precision = resolve(args.precision)
    with tempfile.TemporaryDirectory() as tmp:
        emb_path, rew_path = Path(tmp, "emb.npy"), Path(tmp, "rew.npy")
        write_split(emb_path, rew_path, args.prompts, K, args.dim, 0, 0, "train", "rough")
        emb, rew = np.load(emb_path, mmap_mode="r"), np.load(rew_path)
        rng = np.random.default_rng(0)
        empty = np.empty(0, np.int64)
        a, b = draw_pool(args.prompts, K, pool="cross_prompt", size=2000, exclude=empty, rng=rng)
        flat = rew.reshape(-1)
        label = annotate((flat[a] - flat[b]) / flat.std(), 10.0, rng)
        orm = yaml.safe_load((ROOT / "config.yaml").read_text())["orm"]
        orm |= {"ensemble_number": args.members, "hidden_sizes": [1024, 512], "lr": 1e-3}
        orm |= {"batch_size": 64, "max_epochs": args.epochs, "checks_per_epoch": 2}
        orm |= {"patience": 4, "val_fraction": 0.2, "objective": "bt"}
        orm |= {"n_sample": args.prompts, "annotation_quality": 10.0, "consider_first_n": 2}
        annotated = Pairs(a, b, label, K)
        _, train_s = timed(
            lambda: train_on_pairs(
                emb=emb,
                rew=rew,
                pairs=annotated,
                scale=1.0,
                ckpt=Path(tmp, "e.ckpt"),
                summary_json=Path(tmp, "s.json"),
                orm=OrmSettings.of(orm),
                seed=0,
                task="bench",
                precision="fp32",
            )
        )
        model, _ = load_ensemble(Path(tmp, "e.ckpt"))
        first, second = draw_pool(
            args.prompts,
            K,
            pool="cross_prompt",
            size=args.candidates,
            exclude=pair_keys(a, b, args.prompts * K),
            rng=rng,
        )
        rows = []
        gap, forward_gap = timed(lambda: pair_gaps(model, emb, first, second, precision))

        def uncertainty(n_pick, *_):
            return np.argsort(np.abs(gap.mean(0)) / gap.std(0))[:n_pick]

        ((diff, dgap), (known_diff, known_gap)), forward = timed(
            pool_and_annotated_features, model, emb, (first, second), annotated, precision
        )

        def dopt(n_pick, diff, known_diff):  # fisher_rows scales copies in place
            z = fisher_rows(diff, dgap)
            greedy_logdet(z, information(fisher_rows(known_diff, known_gap), ridge_of(z)), n_pick)

        def coreset(n_pick, diff, known_diff):
            r = random_projection(diff.shape[0], diff.shape[2], np.random.default_rng(0))
            k_center(project(diff, r), project(known_diff, r), n_pick)

        for name, choose, spent in (
            ("uncertainty", uncertainty, forward_gap),
            ("dopt", dopt, forward),
            ("coreset", coreset, forward),
        ):
            for n_pick in args.picks:
                features = diff.copy(), known_diff.copy()
                rows.append((name, n_pick, spent, timed(choose, n_pick, *features)[1]))
    report = {
        "candidates": args.candidates,
        "dim": args.dim,
        "members": args.members,
        "hidden_sizes": [1024, 512],
        "annotated": len(annotated),
        "train_seconds": train_s,
        "precision": precision,
        "torch_threads": torch.get_num_threads(),
        "rows": [
            {
                "strategy": s,
                "picks": p,
                "forward_s": round(f, 2),
                "choice_s": round(c, 2),
                "round_s": round(f + c, 2),
            }
            for s, p, f, c in rows
        ],
    }
    print(f"{args.candidates} candidates, D={args.dim}, {args.members} members, H=512, {precision}")
    print(f"{'strategy':12} {'picks':>6} {'forward s':>10} {'choice s':>9} {'round s':>8}")
    for s, p, f, c in rows:
        print(f"{s:12} {p:6d} {f:10.2f} {c:9.2f} {f + c:8.2f}")
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
