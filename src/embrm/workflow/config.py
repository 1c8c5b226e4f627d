"""Config logic the Snakefile needs: cross-field checks and experiment folders.

The JSON schema catches unknown keys, wrong types and out-of-range values; the checks
here catch what a schema cannot (values that contradict each other), before any job
runs, and name the offending key. Data locations are in :mod:`embrm.data_layout`.
"""

from __future__ import annotations

import copy

from embrm.errors import InputError

MAIN = "results"
# the main run writes to results/; study points (see studies) to results/studies/<study>/<point>
EXP_PATTERN = r"results(/studies/[^/]+/[^/]+)?"


def check_config(config: dict) -> None:
    """Raise InputError naming the key whose value contradicts another."""
    orm = config["orm"]
    source = config["data"]["source"]
    if source == "synthetic" and orm["n_sample"] > config["data"]["synthetic"]["n_train"]:
        raise InputError(
            f"config key orm.n_sample={orm['n_sample']} exceeds "
            f"data.synthetic.n_train={config['data']['synthetic']['n_train']}"
        )
    if source == "generate":
        gen = config["generation"]
        train = gen["prompts"]["max_train_prompts"]
        if train is not None and orm["n_sample"] > train:
            raise InputError(
                f"config key orm.n_sample={orm['n_sample']} exceeds "
                f"generation.prompts.max_train_prompts={train}"
            )
        if config["task"] not in gen["golden"]["models"]:
            raise InputError(
                f"config key generation.golden.models has no golden RM for task {config['task']!r}"
            )
    if source == "import" and not config["data"].get("import", {}).get("dir"):
        raise InputError(
            "config key data.import.dir must name the release folder for source=import"
        )
    if abs(sum(config["distill"]["split"]) - 1.0) > 1e-6:
        raise InputError(
            f"config key distill.split must sum to 1, got {config['distill']['split']}"
        )


def exp_config(config: dict, exp: str, points: dict[str, dict] | None = None) -> dict:
    """The effective config of an experiment folder: the main run or a study point
    (``points``: every point's config, computed once per workflow parse)."""
    if exp == MAIN:
        return config
    from embrm.studies import point_config

    return point_config(config, exp, points)


def final_artifacts(config: dict) -> list[str]:
    """What one experiment folder holds when steps 5-8 are done."""
    return [
        "orm/ensemble.ckpt",
        "eval_results.json",
        "bon_curve.png",
        "isotonic_teacher_map.joblib",
        "isotonic_map.joblib",
        f"distilled_rm_{config['task']}_{config['orm']['objective']}.ckpt",
        "isotonic_student_map.joblib",
        "distillation_config.json",
        "validation_results.json",
        "calibration_plot.png",
        "report/reliability.png",
        "report/runtimes.png",
    ]


def with_overrides(config: dict, overrides: dict) -> dict:
    """A deep copy of ``config`` with dotted-key overrides (``orm.n_sample: 500``)."""
    out = copy.deepcopy(config)
    for dotted, value in overrides.items():
        node = out
        *parents, leaf = dotted.split(".")
        for key in parents:
            if key not in node or not isinstance(node[key], dict):
                raise InputError(f"override {dotted!r}: config has no section {key!r}")
            node = node[key]
        if leaf not in node:
            raise InputError(f"override {dotted!r}: config has no key {leaf!r}")
        node[leaf] = value
    return out


def release_files(imp: dict, split: str) -> list[str]:
    """The published release files (embeddings, rewards) that one split imports from,
    given a ``data.import`` section."""
    from embrm.importer import release_paths

    emb, rew = release_paths(
        imp["dir"], imp["dataset"], imp["gen_model"], imp["embed_model"], imp["reward_model"], split
    )
    return [str(emb), str(rew)]


def check_student_name(config: dict, task: str, objective: str) -> dict:
    """A student file name must match its experiment's task and objective."""
    want = (config["task"], config["orm"]["objective"])
    if (task, objective) != want:
        raise InputError(
            f"distilled_rm_{task}_{objective}.ckpt does not match this experiment's config "
            f"(task={want[0]}, orm.objective={want[1]})"
        )
    return config
