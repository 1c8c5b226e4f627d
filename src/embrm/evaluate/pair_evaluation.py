"""Step 6 for human preference pairs: held-out accuracy against a logistic floor.

Test pairs come as embeddings ``(N, 2, D)`` and preferences ``(N, 2)`` (1 marks the
chosen column, in a seeded random order; see :mod:`embrm.data.preferences`).

- accuracy: a pair counts only when the chosen response scores strictly higher (a tie
  is wrong), with a Wilson 95 % interval; per ``subset`` too, and the subsets' scores
  weighted by their pair counts (RewardBench's section score);
- the floor: a logistic regression on embedding differences ``e_0 - e_1`` (no
  intercept: swapping the columns flips the prediction), its regularisation chosen by
  5-fold cross-validation on the train pairs (:func:`fit_baseline`, its own rule);
  the ensemble against it by an exact McNemar test on the pairs one gets right and the
  other wrong;
- calibration of P(column 0 wins) = sigmoid(s_0 - s_1): with randomly oriented pairs
  the outcome is 1 about half the time, so the reliability curve and ECE say whether
  the probabilities mean what they say (with chosen always first, a model that knows
  nothing still looks calibrated for "chosen wins" only by accident);
- the histogram of the margins s_chosen - s_rejected.
"""

from __future__ import annotations

import math

import numpy as np

from embrm.data.arrays import load_split, save_array
from embrm.evaluate.metrics import AGGREGATIONS, aggregate, reliability
from embrm.evaluate.plots import save_figure
from embrm.io.errors import InputError
from embrm.io.jsonio import read_jsonl, write_json
from embrm.rm.ensemble import load_ensemble
from embrm.rm.precision import resolve
from embrm.rm.scoring import score_array

Z95 = 1.959963984540054
BASELINE_CS = 10  # regularisation strengths tried by the baseline's cross-validation
BASELINE_FOLDS = 5


def wilson(correct: int, n: int, z: float = Z95) -> list[float]:
    """Wilson score interval of a binomial proportion ``correct / n``."""
    if n == 0:
        return [float("nan"), float("nan")]
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def accuracy(right: np.ndarray) -> dict:
    """Pairs, pairs right, accuracy and its Wilson 95 % interval of booleans ``(N,)``."""
    n, k = int(right.size), int(right.sum())
    return {
        "pairs": n,
        "correct": k,
        "accuracy": k / n if n else float("nan"),
        "ci95": wilson(k, n),
    }


def subset_accuracy(right: np.ndarray, subsets: list[str | None]) -> dict:
    """Accuracy per subset and the subsets' accuracies weighted by their pair counts."""
    names = sorted({s for s in subsets if s is not None})
    labels = np.array([s if s is not None else "" for s in subsets])
    per = {name: accuracy(right[labels == name]) for name in names}
    counted = sum(v["pairs"] for v in per.values())
    weighted = sum(v["accuracy"] * v["pairs"] for v in per.values()) / counted if counted else None
    return {"per_subset": per, "weighted": weighted}


def mcnemar(first: np.ndarray, second: np.ndarray) -> dict:
    """Exact McNemar test of two classifiers' right/wrong ``(N,)`` on the same pairs:
    two-sided binomial test of the discordant pairs against 1/2."""
    from scipy.stats import binomtest

    only_first = int((first & ~second).sum())
    only_second = int((~first & second).sum())
    n = only_first + only_second
    p = 1.0 if n == 0 else float(binomtest(only_first, n, 0.5).pvalue)
    return {"only_ensemble_right": only_first, "only_baseline_right": only_second, "p_value": p}


def chosen_right(diff: np.ndarray, preferences: np.ndarray) -> np.ndarray:
    """Whether the chosen column scores strictly higher, from ``diff = s_0 - s_1``."""
    chosen_first = preferences[:, 0] > preferences[:, 1]
    return np.where(chosen_first, diff > 0, diff < 0)


def chosen_margin(diff: np.ndarray, preferences: np.ndarray) -> np.ndarray:
    """``s_chosen - s_rejected`` from ``diff = s_0 - s_1``."""
    return np.where(preferences[:, 0] > preferences[:, 1], diff, -diff)


def differences(embeddings) -> np.ndarray:
    """``e_0 - e_1`` ``(N, D)`` float64 of pair embeddings ``(N, 2, D)``."""
    emb = np.asarray(embeddings, dtype=np.float64)
    return emb[:, 0] - emb[:, 1]


def fit_baseline(
    *,
    train_embeddings,
    train_preferences,
    test_embeddings,
    test_preferences,
    test_scores,
    summary_json,
    seed: int,
) -> dict:
    """Fit the logistic floor on the train pairs and write its test logits ``(N,)``
    (P(column 0 wins) = sigmoid(logit)) and a summary (chosen C, train and test accuracy)."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold

    emb, pref = load_split(train_embeddings, train_preferences)
    test_emb, test_pref = load_split(test_embeddings, test_preferences)
    x, y = differences(emb), (pref[:, 0] > pref[:, 1]).astype(int)
    if len(np.unique(y)) < 2:
        raise InputError(f"{train_preferences}: every pair has its chosen response in one column")
    model = LogisticRegressionCV(
        Cs=BASELINE_CS,
        cv=StratifiedKFold(BASELINE_FOLDS, shuffle=True, random_state=seed),
        fit_intercept=False,
        scoring="neg_log_loss",
        max_iter=5000,
        l1_ratios=(0.0,),  # plain L2
        use_legacy_attributes=False,
    ).fit(x, y)
    logits = model.decision_function(differences(test_emb)).astype(np.float32)
    save_array(test_scores, logits)
    summary = {
        "model": "logistic regression on e_0 - e_1, no intercept",
        "C": float(model.C_),
        "Cs_tried": [float(c) for c in model.Cs_],
        "folds": BASELINE_FOLDS,
        "train_pairs": len(y),
        "train_accuracy": float(chosen_right(model.decision_function(x), pref).mean()),
        "test_accuracy": float(chosen_right(logits, np.asarray(test_pref)).mean()),
    }
    write_json(summary_json, summary)
    return summary


def calibration(diff: np.ndarray, preferences: np.ndarray) -> dict:
    """Reliability of P(column 0 wins) = sigmoid(diff) and its ECE (10 bins)."""
    rel = reliability(diff, preferences[:, 0] - preferences[:, 1])
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in rel.items()}


def plot_pairs(curves: dict, margins: dict, reliability_plot, margins_plot) -> None:
    """Reliability curves and margin histograms, one line or panel per model."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    for name, rel in curves.items():
        ax.plot(
            rel["predicted"], rel["observed"], marker="o", label=f"{name} (ECE {rel['ece']:.3f})"
        )
    ax.set_xlabel("predicted P(first wins) = sigmoid(s_first - s_second)")
    ax.set_ylabel("observed frequency (human label)")
    ax.set_title("Calibration on randomly oriented test pairs")
    ax.legend()
    save_figure(fig, reliability_plot)
    fig, axes = plt.subplots(1, len(margins), figsize=(4.5 * len(margins), 3.6))
    for ax, (name, m) in zip(np.atleast_1d(axes), margins.items()):
        ax.hist(m, bins=50)
        ax.axvline(0, color="k", lw=0.8)
        ax.set_xlabel(f"{name}: s_chosen - s_rejected")
    save_figure(fig, margins_plot)


def evaluate_pairs(
    *,
    ckpt,
    embeddings,
    preferences,
    pairs,
    baseline_scores,
    results,
    test_scores,
    reliability_plot,
    margins_plot,
    eval_cfg: dict,
    precision: str = "fp32",
) -> dict:
    """Score the test pairs with the ensemble ``ckpt`` and write their metrics.

    ``embeddings`` ``(N, 2, D)``, ``preferences`` ``(N, 2)``, ``pairs`` (the JSON lines
    with ``subset`` where given): the test split; ``baseline_scores`` ``(N,)``: the
    logistic floor's logits. Writes ``test_scores`` ``(N, 2, M)`` (every member),
    ``results`` (JSON) and the two plots.
    """
    precision = resolve(precision)
    emb, pref = load_split(embeddings, preferences)
    pref = np.asarray(pref)
    rows = read_jsonl(pairs)
    base = np.load(baseline_scores).astype(np.float64)
    if not len(rows) == len(pref) == len(base):
        raise InputError(
            f"{pairs}, {preferences} and {baseline_scores} hold {len(rows)}, {len(pref)} "
            f"and {len(base)} pairs; they must be of the same test split"
        )
    model, payload = load_ensemble(ckpt, input_dim=emb.shape[-1])
    scores = score_array(model, emb, eval_cfg["chunk_prompts"], precision)
    save_array(test_scores, scores)
    diffs = {how: aggregate(scores, how).astype(np.float64) for how in AGGREGATIONS}
    diff = diffs["mean"][:, 0] - diffs["mean"][:, 1]
    right = chosen_right(diff, pref)
    base_right = chosen_right(base, pref)
    subsets = [r.get("subset") for r in rows]
    out = {
        "members": len(payload["members"]),
        "precision": precision,
        "test_pairs": len(pref),
        "ensemble": {
            **accuracy(right),
            "subsets": subset_accuracy(right, subsets),
            "calibration": calibration(diff, pref),
            "aggregations": {
                how: accuracy(chosen_right(d[:, 0] - d[:, 1], pref))["accuracy"]
                for how, d in diffs.items()
            },
            "per_member_accuracy": [
                float(chosen_right(scores[:, 0, m] - scores[:, 1, m], pref).mean())
                for m in range(scores.shape[-1])
            ],
        },
        "baseline": {
            **accuracy(base_right),
            "subsets": subset_accuracy(base_right, subsets),
            "calibration": calibration(base, pref),
        },
        "mcnemar": mcnemar(right, base_right),
    }
    out["ensemble"]["ece"] = out["ensemble"]["calibration"]["ece"]
    out["baseline"]["ece"] = out["baseline"]["calibration"]["ece"]
    write_json(results, out)
    plot_pairs(
        {"ensemble": out["ensemble"]["calibration"], "logistic": out["baseline"]["calibration"]},
        {"ensemble": chosen_margin(diff, pref), "logistic": chosen_margin(base, pref)},
        reliability_plot,
        margins_plot,
    )
    return out
