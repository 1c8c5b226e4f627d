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

from embrm.data.arrays import load_split, save_array
from embrm.io.atomic import atomic_path
from embrm.io.errors import InputError
from embrm.io.jsonio import write_json
from embrm.rm.ensemble import gather_rows
from embrm.rm.precision import resolve, storage_dtype
from embrm.rm.scoring import score_array
from embrm.rm.stacked_mlp import StackedMLP
from embrm.rm.training import fit

log = logging.getLogger(__name__)

FORMAT = "embrm.student/1"
STUDENT_PATIENCE = 3


def _prompt_rows(emb: np.ndarray, prompts: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """The responses of ``prompts`` (ascending) as rows ``(len(prompts) * K, D)`` in
    ``dtype``, read chunk by chunk: only one chunk is ever held in float32, so the peak
    is the student's rows in their storage dtype, not twice that."""
    k = emb.shape[1]
    return gather_rows(emb, (prompts[:, None] * k + np.arange(k)).reshape(-1), dtype)


def _load_split_file(path, n_prompts: int):
    data = np.load(path)
    if data["split"].shape != (n_prompts,):
        raise InputError(f"{path}: split for {data['split'].shape} prompts, data has {n_prompts}")
    return data["split"], data["targets"]


def train_student(
    *,
    embeddings,
    rewards,
    split,
    ckpt,
    scores,
    stats,
    distill_cfg: dict,
    seed: int,
    chunk_prompts: int,
    precision: str = "fp32",
) -> dict:
    """Train the student on the student-train prompts (label 1 in ``split``) towards their
    out-of-fold teacher targets.

    ``embeddings`` ``(N, K, D)``: the test split (``rewards`` ``(N, K)`` only checks the
    shape). Writes ``ckpt`` (one MLP), ``scores`` ``(N, K)`` float32 of every test
    response, and ``stats`` (JSON: prompts, epochs, best validation MSE).
    """
    precision = resolve(precision)
    emb, golden = load_split(embeddings, rewards, check_values=False)
    n, k, d = emb.shape
    labels, targets = _load_split_file(split, n)
    prompts = np.flatnonzero(labels == 1)
    rng = np.random.default_rng([seed, 9])
    n_val = max(1, len(prompts) // 10)
    if len(prompts) - n_val < 1:
        raise InputError(f"{split}: {len(prompts)} student-train prompts are too few")
    val_prompts = rng.choice(prompts, n_val, replace=False)
    train_prompts = np.setdiff1d(prompts, val_prompts)
    x = _prompt_rows(emb, prompts, storage_dtype(precision))
    y = torch.from_numpy(targets[prompts].reshape(-1).astype(np.float32))
    in_train = np.isin(np.repeat(prompts, k), train_prompts)

    def item_loss(model, idx):
        idx = torch.as_tensor(idx)
        return (model(x[idx]).float() - y[idx]) ** 2

    model = StackedMLP(d, distill_cfg["hidden_sizes"], [seed])
    result = fit(
        model,
        train_mask=in_train[None, :],
        val_mask=~in_train[None, :],
        item_loss=item_loss,
        lr=distill_cfg["lr"],
        batch_size=distill_cfg["batch_size"],
        max_epochs=distill_cfg["distill_epochs"],
        checks_per_epoch=1,
        patience=STUDENT_PATIENCE,
        seed=seed,
        precision=precision,
    )
    model.eval()
    save_array(scores, score_array(model, emb, chunk_prompts, precision)[..., 0])
    # torch.save names the zip's folder after the file: a temp name with the same stem
    with atomic_path(ckpt, temp_name=f"{Path(ckpt).stem}.tmp") as tmp:
        torch.save(
            {
                "format": FORMAT,
                "input_dim": d,
                "hidden_sizes": model.hidden_sizes,
                "state_dict": model.member_state(0),
                "target": "teacher isotonic map (out-of-fold), golden-reward scale",
            },
            tmp,
        )
    summary = {
        "student_train_prompts": int(len(train_prompts)),
        "student_val_prompts": int(n_val),
        "epochs_run": int(result.steps_run[0] // result.steps_per_epoch),
        "best_epoch": int(result.best_step[0] // result.steps_per_epoch),
        "best_val_mse": float(result.best_val_score[0]),
        "patience": STUDENT_PATIENCE,
        "precision": precision,
    }
    write_json(stats, summary)
    return summary
