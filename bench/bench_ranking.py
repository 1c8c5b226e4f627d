"""Ranking quality against the published procedure, on every planted family and noise.

For each planted family of ``embrm.data.synthetic.MODELS`` and each annotation quality
``q`` in 10, 1 and 0.5 (about 11 %, 35 % and 42 % wrong labels at reward scale 6.0), at
the published step-5 setup (``bench/paper_shape.yaml``: 10,000 cross-prompt pairs over
10,000 train prompts x 10 responses, 10 members, 200 test prompts x 500 responses,
D = 2048), it runs

- this project's steps 5-8 through the real workflow (``bench_core.run_scale``: wall
  seconds and peak RSS of every job), and
- the published procedure emulated on the same pairs (``bench/published_procedure.py``),

and scores both with the same code on the same test split: per-prompt Spearman of the
ensemble mean and of the first and worst member, pairwise accuracy of the mean, the
golden reward of best-of-100, and the held-out MSE of the isotonic-calibrated teacher
(fit on this run's calibration prompts; the teacher is the ensemble mean here and member
0 in the published code). The published scores are cached per family and quality under
the work folder (they depend only on the data). ``--published-from`` takes the
published row of a point without cached scores from an earlier run's JSON instead of
emulating it again (15-50 minutes a point on 2 cores): the point then names that file,
and a point whose earlier self recorded a different data fingerprint (a SHA-256 of the
pairs and the test rewards) is refused. Prints one table, writes JSON and a Markdown
table; points of earlier runs in the same JSON are kept (a point run again replaces its
earlier self), so the grid can be filled one family or quality at a time.
Usage:

    python bench/bench_ranking.py [--families smooth rough prompt_heavy] [--qualities 10 1 0.5]
                                  [--published-from earlier.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import yaml

from embrm.calibrate.isotonic import fit_isotonic, mse
from embrm.data.arrays import load_split
from embrm.data.synthetic import MODELS
from embrm.evaluate.metrics import best_of_n, pairwise_accuracy, per_prompt_spearman
from embrm.rm.ensemble import golden_pairs
from embrm.rm.options import OrmSettings
from embrm.rm.precision import resolve
from embrm.rm.scoring import score_array

from bench_core import ROOT, run_scale
from published_procedure import train_published

QUALITIES = [10.0, 1.0, 0.5]
BON = 100
COLUMNS = ["ensemble", "first", "worst", "pairwise", f"bon{BON}", "cal_mse"]


def paper_config(family: str, quality: float) -> dict:
    """config.yaml with the paper-shape overrides, the family and the quality."""
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    for section, values in yaml.safe_load((ROOT / "bench/paper_shape.yaml").read_text()).items():
        cfg[section] = {**cfg[section], **values} if isinstance(values, dict) else values
    cfg["data"]["synthetic"]["model"] = family
    cfg["orm"]["annotation_quality"] = quality
    return cfg


def quality_row(scores: np.ndarray, teacher: np.ndarray, golden: np.ndarray, split) -> dict:
    """The table's numbers for test scores ``(N, K, M)``; ``teacher`` ``(N, K)`` is what
    isotonic calibration maps (fit on ``split == 0`` prompts, judged on ``split == 2``)."""
    mean = scores.mean(-1)
    members = [per_prompt_spearman(scores[..., i], golden) for i in range(scores.shape[-1])]
    bon = best_of_n({"mean": mean}, golden, [BON], 100, seed=0)["mean"][str(BON)]
    iso = fit_isotonic(teacher[split == 0], golden[split == 0])
    held = split == 2
    return {
        "ensemble": per_prompt_spearman(mean, golden),
        "first": members[0],
        "worst": min(members),
        "pairwise": pairwise_accuracy(mean, golden),
        f"bon{BON}": bon["reward"],
        "cal_mse": mse(iso.predict(teacher[held].ravel()), golden[held].ravel()),
        "members": members,
    }


def published_scores(cfg: dict, data: Path, cache: Path) -> tuple[np.ndarray, dict]:
    """The emulated published members' test scores ``(N, K, M)`` (cached) and its fit."""
    scores_file, fit_file = cache.with_suffix(".npy"), cache.with_suffix(".json")
    if scores_file.is_file():
        return np.load(scores_file), json.loads(fit_file.read_text())
    precision = resolve(cfg["precision"])
    emb, rew = load_split(data / "train_embeddings.npy", data / "train_rewards.npy")
    pairs, _ = golden_pairs(rew, OrmSettings.of(cfg["orm"]), cfg["seed"])
    start = time.perf_counter()
    model, result = train_published(
        emb, pairs, members=cfg["orm"]["ensemble_number"], seed=cfg["seed"], precision=precision
    )
    fit = {"train_s": time.perf_counter() - start, "steps_run": result.steps_run.tolist()}
    test_emb, _ = load_split(data / "test_embeddings.npy", data / "test_rewards.npy")
    scores = score_array(model, test_emb, cfg["evaluation"]["chunk_prompts"], precision)
    np.save(scores_file, scores)
    fit_file.write_text(json.dumps(fit))
    return scores, fit


def data_fingerprint(cfg: dict, data: Path) -> str:
    """SHA-256 of the point's train pairs (both sides and labels) and test rewards: what
    the published procedure's result depends on."""
    _, rew = load_split(data / "train_embeddings.npy", data / "train_rewards.npy")
    pairs, _ = golden_pairs(rew, OrmSettings.of(cfg["orm"]), cfg["seed"])
    digest = hashlib.sha256()
    for a in (pairs.first, pairs.second, pairs.label, np.load(data / "test_rewards.npy")):
        digest.update(np.ascontiguousarray(a).tobytes())
    return digest.hexdigest()


def earlier_published(path: Path, family: str, quality: float, fingerprint: str) -> dict:
    """The published row and fit of this point in an earlier run's JSON ``path``."""
    found = [p for p in earlier_points(path) if (p["family"], p["quality"]) == (family, quality)]
    if not found:
        raise SystemExit(f"{path}: no point {family} q={quality:g} to take the published row from")
    point = found[0]
    if point.get("data_sha256", fingerprint) != fingerprint:
        raise SystemExit(f"{path}: point {family} q={quality:g} was measured on other data")
    return {
        "published": point["published"],
        "published_fit": point["published_fit"],
        "published_from": point.get("published_from", str(path)),
    }


def run_point(family: str, quality: float, workdir: Path, published_from: Path | None) -> dict:
    """Both procedures on one family and quality; the workflow's folder is reused across
    qualities, so the data are generated once per family."""
    cfg = paper_config(family, quality)
    ours = run_scale(cfg, workdir / family)
    res = workdir / family / "results"
    golden = np.asarray(np.load(res / "data/synthetic/test_rewards.npy"), dtype=np.float64)
    split = np.load(res / "calibration/split.npz")["split"]
    our_scores = np.load(res / "eval/test_scores.npy")
    cache = workdir / "published" / f"{family}_q{quality}"
    cache.parent.mkdir(parents=True, exist_ok=True)
    fingerprint = data_fingerprint(cfg, res / "data/synthetic")
    if published_from is not None and not cache.with_suffix(".npy").is_file():
        published = earlier_published(published_from, family, quality, fingerprint)
    else:
        pub_scores, pub_fit = published_scores(cfg, res / "data/synthetic", cache)
        published = {
            "published": quality_row(pub_scores, pub_scores[..., 0], golden, split),
            "published_fit": pub_fit,
        }
    return {
        "family": family,
        "quality": quality,
        "data_sha256": fingerprint,
        "ours": quality_row(our_scores, our_scores.mean(-1), golden, split),
        **published,
        "steps_5_8_s": ours["sum_of_stages_s"],
        "peak_rss_mb": ours["peak_rss_mb"],
        "precision": ours["precision"],
        "member_steps_run": ours["member_steps_run"],
    }


def table(points: list[dict]) -> str:
    head = " | ".join(f"{c} ours / pub." for c in COLUMNS)
    lines = [f"| family | q | {head} | steps 5-8 s | peak RSS MB |"]
    lines.append("|---" * (len(COLUMNS) + 4) + "|")
    for p in points:
        cells = " | ".join(f"{p['ours'][c]:.3f} / {p['published'][c]:.3f}" for c in COLUMNS)
        lines.append(
            f"| {p['family']} | {p['quality']:g} | {cells} | {p['steps_5_8_s']:.1f} | "
            f"{p['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def targets(points: list[dict]) -> list[str]:
    """Every target of the issue that a point misses, in words (empty: all met)."""
    missed = []
    for p in points:
        ours, pub, name = p["ours"], p["published"], f"{p['family']} q={p['quality']:g}"
        checks = [
            (ours["ensemble"] >= pub["ensemble"] + 0.01, "ensemble >= published + 0.01"),
            (ours["worst"] >= pub["first"], "worst member >= published first member"),
            (ours["pairwise"] >= pub["pairwise"], "pairwise >= published"),
        ]
        missed += [f"{name}: {what}" for ok, what in checks if not ok]
    return missed


def earlier_points(path: Path) -> list[dict]:
    """The points an earlier run wrote to ``path`` (none if it does not exist)."""
    return json.loads(path.read_text())["points"] if path.is_file() else []


def merged(points: list[dict], point: dict) -> list[dict]:
    """``points`` with ``point`` in place of an earlier one of its family and quality,
    ordered by family (as in ``MODELS``) then by falling quality."""
    key = (point["family"], point["quality"])
    kept = [p for p in points if (p["family"], p["quality"]) != key] + [point]
    return sorted(kept, key=lambda p: (list(MODELS).index(p["family"]), -p["quality"]))


def write(points: list[dict], path: Path) -> None:
    """The JSON (points and missed targets) and the Markdown table beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"points": points, "missed": targets(points)}, indent=1) + "\n")
    path.with_suffix(".md").write_text(table(points) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--qualities", nargs="+", type=float, default=QUALITIES)
    ap.add_argument("--workdir", type=Path, default=ROOT / "bench/out/ranking")
    ap.add_argument("--json", type=Path, default=ROOT / "bench/out/bench_ranking.json")
    ap.add_argument("--published-from", type=Path, help="an earlier run's JSON (see above)")
    args = ap.parse_args()
    points = earlier_points(args.json)
    for family in args.families:
        for quality in args.qualities:
            points = merged(points, run_point(family, quality, args.workdir, args.published_from))
            write(points, args.json)  # a long run keeps every point it finished
    print(table(points))
    missed = targets(points)
    print("\n".join(["", "targets missed:", *missed]) if missed else "\nall targets met")


if __name__ == "__main__":
    main()
