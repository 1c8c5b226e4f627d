"""Step 7b: distil the calibrated teacher into one student MLP, then calibrate the student.

The student learns embedding -> calibrated reward (MSE) on the student-train prompts,
whose targets are out-of-fold teacher-map predictions (see calibration.py). A tenth of
those prompts is held back for early stopping. The student map (student -> golden) is
fit on the calibration prompts, which the student never trained on (calibration.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from embrm.arrays import load_split, save_array
from embrm.errors import InputError
from embrm.jsonio import write_json
from embrm.precision import storage_dtype
from embrm.scoring import score_array
from embrm.stacked_mlp import StackedMLP
from embrm.training import MICRO_BATCH, fit

log = logging.getLogger(__name__)

FORMAT = "embrm.student/1"
STUDENT_PATIENCE = 3


def _load_split_file(path, n_prompts: int):
    data = np.load(path)
    if data["split"].shape != (n_prompts,):
        raise InputError(f"{path}: split for {data['split'].shape} prompts, data has {n_prompts}")
    return data["split"], data["targets"]


def train_student(
    test_embeddings,
    test_rewards,
    split_file,
    out_ckpt,
    out_scores,
    out_stats,
    distill_cfg: dict,
    *,
    seed: int,
    chunk_prompts: int,
    precision: str = "fp32",
) -> dict:
    emb, golden = load_split(test_embeddings, test_rewards, check_values=False)
    n, k, d = emb.shape
    split, targets = _load_split_file(split_file, n)
    prompts = np.flatnonzero(split == 1)
    rng = np.random.default_rng([seed, 9])
    n_val = max(1, len(prompts) // 10)
    if len(prompts) - n_val < 1:
        raise InputError(f"{split_file}: {len(prompts)} student-train prompts are too few")
    val_prompts = rng.choice(prompts, n_val, replace=False)
    train_prompts = np.setdiff1d(prompts, val_prompts)
    x = torch.from_numpy(np.asarray(emb[prompts], dtype=np.float32).reshape(-1, d))
    x = x.to(storage_dtype(precision))
    y = torch.from_numpy(targets[prompts].reshape(-1).astype(np.float32))
    in_train = np.isin(np.repeat(prompts, k), train_prompts)
    val_items = np.flatnonzero(~in_train)

    def item_loss(model, idx):
        idx = torch.as_tensor(idx)
        return (model(x[idx]).float() - y[idx]) ** 2

    def val_fn(model):
        sums = sum(
            item_loss(model, val_items[s : s + MICRO_BATCH]).sum()
            for s in range(0, len(val_items), MICRO_BATCH)
        )
        return [float(sums) / len(val_items)]

    model = StackedMLP(d, distill_cfg["hidden_sizes"], [seed])
    result = fit(
        model,
        in_train[None, :],
        item_loss,
        val_fn,
        lr=distill_cfg["lr"],
        batch_size=distill_cfg["batch_size"],
        max_epochs=distill_cfg["distill_epochs"],
        patience=STUDENT_PATIENCE,
        seed=seed,
        precision=precision,
    )
    model.eval()
    scores = score_array(model, emb, chunk_prompts, precision)[..., 0]
    save_array(out_scores, scores)
    Path(out_ckpt).parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "format": FORMAT,
            "input_dim": d,
            "hidden_sizes": model.hidden_sizes,
            "state_dict": model.member_state(0),
            "target": "teacher isotonic map (out-of-fold), golden-reward scale",
        },
        out_ckpt,
    )
    stats = {
        "student_train_prompts": int(len(train_prompts)),
        "student_val_prompts": int(n_val),
        "epochs_run": int(result.epochs_run[0]),
        "best_epoch": int(result.best_epoch[0]),
        "best_val_mse": float(result.best_val_loss[0]),
        "patience": STUDENT_PATIENCE,
    }
    write_json(out_stats, stats)
    return stats


def load_student(path, input_dim: int | None = None) -> torch.nn.Sequential:
    """The distilled student as a plain ``nn.Sequential`` (loaded with ``weights_only``)."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("format") != FORMAT:
        raise InputError(f"{path}: not an {FORMAT} checkpoint")
    if input_dim is not None and payload["input_dim"] != input_dim:
        raise InputError(
            f"{path}: student expects dimension {payload['input_dim']}, data has {input_dim}"
        )
    sizes = [payload["input_dim"], *payload["hidden_sizes"], 1]
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers)
    net.load_state_dict(payload["state_dict"])
    return net.eval()
