"""The reward-model bundle: one folder that holds everything needed to score text.

Written by the ``reward_model`` rule from a finished run; read by
:meth:`embrm.serve.model.RewardModel.from_pretrained`. Nothing in it is unpickled:
weights are safetensors, isotonic maps are JSON breakpoints, settings are JSON.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from embrm import __version__
from embrm.calibrate.distill import FORMAT as STUDENT_FORMAT
from embrm.io.atomic import atomic_path
from embrm.io.errors import InputError
from embrm.io.jsonio import read_json, write_json
from embrm.multi_objective.heads import SETTINGS as MO_SETTINGS
from embrm.multi_objective.heads import TENSORS as MO_TENSORS
from embrm.multi_objective.heads import load_heads as load_mo_heads
from embrm.rm.ensemble import load_ensemble
from embrm.rm.stacked_mlp import StackedMLP
from embrm.serve import gated
from embrm.serve.heads import HEAD_PARTS, Heads, IsotonicMap
from embrm.serve.heads_report import held_out_report
from embrm.serve.model_card import model_card

FORMAT = "embrm.reward_model/1"
CONFIG = "config.json"
STUDENT = "student.safetensors"
ENSEMBLE = "ensemble.safetensors"
MAPS = {"teacher": "isotonic_teacher_map.json", "student": "isotonic_student_map.json"}
EMBEDDER_DIR = "embedder"
PLOT = "calibration_plot.png"
HELD_OUT = "heads_held_out.json"
HEADS = tuple(HEAD_PARTS)
# a multi-objective bundle holds the heads as the workflow wrote them
GATED_TENSORS, GATED_SETTINGS = MO_TENSORS, MO_SETTINGS
DEFAULT_HEAD = "student_isotonic_strict"  # never ties distinct responses
# the text step 4 embedded: prompt + response cut at its next "\n\nHuman" turn
TEXT_FORMAT = "prompt + response[: response.find('\\n\\nHuman')]"
# models the workflow builds itself live only in the run's folder, so they travel along
BUILT_BY_WORKFLOW = ("tiny",)


def student_as_stacked(ckpt) -> StackedMLP:
    """The student checkpoint (a ``nn.Sequential`` state dict) as a one-member StackedMLP."""
    payload = torch.load(ckpt, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != STUDENT_FORMAT:
        raise InputError(f"{ckpt}: not an {STUDENT_FORMAT} checkpoint")
    state = payload["state_dict"]
    model = StackedMLP(payload["input_dim"], payload["hidden_sizes"], [0])
    model.load_state_dict(
        {
            **{f"weights.{i}": state[f"{2 * i}.weight"].T[None] for i in range(len(model.weights))},
            **{
                f"biases.{i}": state[f"{2 * i}.bias"][None, None] for i in range(len(model.weights))
            },
        }
    )
    return model


def save_head(model: StackedMLP, path) -> None:
    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, tmp)


def load_head(path, input_dim: int, hidden_sizes) -> StackedMLP:
    """A StackedMLP from safetensors; the member count is read from the weights."""
    state = load_file(path)
    model = StackedMLP(input_dim, hidden_sizes, [0] * state["weights.0"].shape[0])
    model.load_state_dict(state)
    return model.eval()


def load_heads(path, config: dict, precision: str) -> Heads | gated.GatedHeads:
    """The heads of the bundle folder ``path`` (its config ``config``), run in
    ``precision`` (a multi-objective bundle's run in fp32)."""
    path, d = Path(path), config["input_dim"]
    if config.get("kind") == gated.KIND:
        return gated.GatedHeads(load_mo_heads(path), tuple(config["reward_range"]))
    return Heads(
        student=load_head(path / STUDENT, d, config["student"]["hidden_sizes"]),
        ensemble=load_head(path / ENSEMBLE, d, config["ensemble"]["hidden_sizes"]),
        teacher_map=IsotonicMap.from_json(read_json(path / MAPS["teacher"])),
        student_map=IsotonicMap.from_json(read_json(path / MAPS["student"])),
        precision=precision,
    )


def temp_folder(bundle) -> Path:
    """Where the bundle is written before it is renamed onto ``bundle``."""
    return Path(bundle).with_name(Path(bundle).name + ".tmp")


def build_bundle(*, bundle, **artifacts) -> dict:
    """:func:`write_bundle`; a failed build removes its temporary folder, so no half
    bundle is left beside the run's results."""
    return _built(write_bundle, bundle, artifacts)


def build_gated_bundle(*, bundle, **artifacts) -> dict:
    """:func:`write_gated_bundle`, leaving no half bundle on failure."""
    return _built(write_gated_bundle, bundle, artifacts)


def _built(write, bundle, artifacts: dict) -> dict:
    try:
        return write(bundle=bundle, **artifacts)
    except BaseException:
        shutil.rmtree(temp_folder(bundle), ignore_errors=True)
        raise


def bundle_embedder(folder: Path, embedding: dict, embedder_path: str) -> dict:
    """The bundle config's ``embedder``: step 4's settings; a model the workflow built
    itself is copied into ``folder``."""
    bundled = embedding["model"] in BUILT_BY_WORKFLOW
    if bundled:
        shutil.copytree(embedder_path, folder / EMBEDDER_DIR)
    return {
        "name": embedding["model"],
        "bundled": bundled,
        **{
            k: embedding[k]
            for k in ("pooling", "normalize", "max_length", "truncation", "batch_size", "dtype")
        },
        "text_format": TEXT_FORMAT,
    }


def write_gated_bundle(
    *, tensors, settings, train_embeddings, bundle, embedding: dict, embedder_path: str, run: dict
) -> dict:
    """Write the bundle folder ``bundle`` of the multi-objective heads ``tensors`` /
    ``settings`` (:mod:`embrm.multi_objective.heads`): the gated reward as the reward,
    per-attribute ratings and weights beside it (:mod:`embrm.serve.gated`).
    ``train_embeddings`` ``(R, 2, D)``: the train split, whose gated rewards give the
    range of the server's 0-1 ``scores``. Returns the bundle's config."""
    out = Path(bundle)
    tmp = temp_folder(out)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for src, name in ((tensors, GATED_TENSORS), (settings, GATED_SETTINGS)):
        shutil.copyfile(src, tmp / name)
    heads = load_mo_heads(tmp)
    emb = np.load(train_embeddings, mmap_mode="r")
    if emb.ndim != 3 or emb.shape[1:] != (2, heads.weight.shape[0]):
        raise InputError(
            f"{train_embeddings}: shape {emb.shape}, the heads read (R, 2, {heads.weight.shape[0]})"
        )
    reward = heads.score(np.asarray(emb[:, 1]), np.asarray(emb[:, 0]))[0]
    config = {
        "format": FORMAT,
        "kind": gated.KIND,
        "embrm_version": __version__,
        "embedder": bundle_embedder(tmp, embedding, embedder_path),
        "input_dim": int(heads.weight.shape[0]),
        "attributes": heads.names,
        "reward_range": [float(reward.min()), float(reward.max())],
        "default_head": gated.HEAD,
        "heads": [gated.HEAD],
        "precision": "fp32",
        **run,
    }
    write_json(tmp / CONFIG, config)
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)
    return config


def write_bundle(
    *,
    ensemble,
    student,
    student_stats,
    teacher_map_json,
    student_map_json,
    distillation_config,
    validation,
    calibration_plot,
    test_embeddings,
    test_rewards,
    split,
    bundle,
    embedding: dict,
    embedder_path: str,
    run: dict,
) -> dict:
    """Write the bundle folder ``bundle`` from a run's step 5-8 artifacts.

    ``embedding``: the step-4 settings that built the training embeddings (model,
    pooling, normalize, max_length, truncation, batch_size, dtype); ``embedder_path``: where that
    model was loaded from; ``run``: task, objective, data description for the card.
    ``test_embeddings``, ``test_rewards`` and step 7's ``split``: the held-out prompts
    every head is measured on (:mod:`embrm.serve.heads_report`). Returns the bundle's
    config.
    """
    out = Path(bundle)
    tmp = temp_folder(out)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    teacher, payload = load_ensemble(ensemble)
    student_mlp = student_as_stacked(student)
    if student_mlp.input_dim != teacher.input_dim:
        raise InputError(f"{student} and {ensemble} expect different embedding dimensions")
    save_head(student_mlp, tmp / STUDENT)
    save_head(teacher, tmp / ENSEMBLE)
    for key, src in (("teacher", teacher_map_json), ("student", student_map_json)):
        shutil.copyfile(src, tmp / MAPS[key])
    shutil.copyfile(calibration_plot, tmp / PLOT)
    config = {
        "format": FORMAT,
        "embrm_version": __version__,
        "embedder": bundle_embedder(tmp, embedding, embedder_path),
        "input_dim": teacher.input_dim,
        "student": {"hidden_sizes": student_mlp.hidden_sizes},
        "ensemble": {
            "hidden_sizes": teacher.hidden_sizes,
            "members": teacher.members,
            "objective": payload["objective"],
            "aggregation": "mean",
        },
        "default_head": DEFAULT_HEAD,
        "heads": list(HEADS),
        "precision": read_json(student_stats)["precision"],
        **run,
    }
    write_json(tmp / CONFIG, config)
    heads = load_heads(tmp, config, config["precision"])
    report = held_out_report(heads, embeddings=test_embeddings, rewards=test_rewards, split=split)
    write_json(tmp / HELD_OUT, report)
    card = model_card(
        config,
        read_json(validation),
        read_json(distillation_config),
        PLOT,
        read_json(tmp / HELD_OUT),
    )
    (tmp / "README.md").write_text(card)
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)
    return config


def read_config(bundle) -> dict:
    """The bundle's config.json, checked for its format."""
    path = Path(bundle) / CONFIG
    if not path.is_file():
        raise InputError(f"{bundle}: no {CONFIG}; not a reward-model bundle")
    config = read_json(path)
    if config.get("format") != FORMAT:
        raise InputError(f"{path}: format {config.get('format')!r}, expected {FORMAT}")
    return config
