"""Active reward modeling (embrm.active): rounds of select, annotate, train, evaluate
under {exp}/active/<strategy>/seed<s>/round_<r>/, and the learning curve. Round 0 (random
pairs) is shared by a seed's strategies: {exp}/active/initial/seed<s>/round_0/."""

from embrm.workflow.config import active_settings

ROUND_DIR = "{exp}/active/{strategy}/seed{seed}/round_{round}"


def active_cfg(wc):
    return active_settings(cfg(wc))


def round_file(kind, exp, strategy, seed, round_index):
    """A file of one round (``kind``: pairs, ckpt or results)."""
    pattern = {
        "pairs": rules.active_select.output.pairs,
        "ckpt": rules.active_train.output.ckpt,
        "training": rules.active_train.output.summary_json,
        "results": rules.active_evaluate.output.results,
    }[kind]
    strategy = "initial" if round_index == 0 else strategy
    return pattern.format(exp=exp, strategy=strategy, seed=seed, round=round_index)


def previous_round(kind):
    """Input function: the previous round's ``kind`` file; round 1 follows round 0."""

    def path(wc):
        act, r = active_cfg(wc), int(wc.round)
        if wc.strategy not in act["strategy"] or int(wc.seed) not in act["seeds"]:
            raise WorkflowError(
                f"{wc.exp}: strategy {wc.strategy} / seed {wc.seed} is not in "
                f"active.strategy {act['strategy']} / active.seeds {act['seeds']}"
            )
        if r > act["rounds"]:
            raise WorkflowError(f"{wc.exp}: round {r} > active.rounds={act['rounds']}")
        return round_file(kind, wc.exp, wc.strategy, wc.seed, r - 1)

    return path


def curve_points(wc):
    """Every round of every configured strategy and seed of the experiment."""
    act = active_cfg(wc)
    if not act["enabled"]:
        raise WorkflowError(f"{wc.exp}: the learning curve needs active.enabled: true")
    return [
        {
            "strategy": s,
            "seed": seed,
            "round": r,
            "results": round_file("results", wc.exp, s, seed, r),
            "training": round_file("training", wc.exp, s, seed, r),
        }
        for s in act["strategy"]
        for seed in act["seeds"]
        for r in range(act["rounds"] + 1)
    ]


rule active_initial:
    input:
        rewards=data_file("rewards", "train"),
    output:
        pairs="{exp}/active/initial/seed{seed}/round_0/pairs.npz",
    log:
        "{exp}/logs/active/initial/seed{seed}/round_0/select.log",
    wildcard_constraints:
        seed="[0-9]+",
    localrule: True
    conda:
        CPU_ENV
    params:
        active_cfg=active_cfg,
        orm_cfg=lambda wc: cfg(wc)["orm"],
        seed=lambda wc: int(wc.seed),
    script:
        "../scripts/active_initial.py"


rule active_select:
    input:
        embeddings=data_file("embeddings", "train"),
        rewards=data_file("rewards", "train"),
        previous_pairs=previous_round("pairs"),
        previous_ckpt=previous_round("ckpt"),
    output:
        pairs=f"{ROUND_DIR}/pairs.npz",
    log:
        "{exp}/logs/active/{strategy}/seed{seed}/round_{round}/select.log",
    benchmark:
        "{exp}/benchmarks/active/{strategy}/seed{seed}/round_{round}/select.tsv"
    wildcard_constraints:
        strategy="random|uncertainty|dopt",
        seed="[0-9]+",
        round="[1-9][0-9]*",
    localrule: True
    conda:
        CPU_ENV
    threads: ALL_CORES
    params:
        active_cfg=active_cfg,
        orm_cfg=lambda wc: cfg(wc)["orm"],
        strategy=lambda wc: wc.strategy,
        seed=lambda wc: int(wc.seed),
        round_index=lambda wc: int(wc.round),
        precision=lambda wc: cfg(wc)["precision"],
    script:
        "../scripts/active_select.py"


rule active_train:
    input:
        embeddings=data_file("embeddings", "train"),
        rewards=data_file("rewards", "train"),
        pairs=f"{ROUND_DIR}/pairs.npz",
    output:
        ckpt=f"{ROUND_DIR}/ensemble.ckpt",
        summary_json=f"{ROUND_DIR}/training.json",
    log:
        "{exp}/logs/active/{strategy}/seed{seed}/round_{round}/train.log",
    benchmark:
        "{exp}/benchmarks/active/{strategy}/seed{seed}/round_{round}/train.tsv"
    wildcard_constraints:
        strategy="initial|random|uncertainty|dopt",
        seed="[0-9]+",
        round="[0-9]+",
    localrule: True
    conda:
        CPU_ENV
    threads: ALL_CORES
    params:
        orm_cfg=lambda wc: cfg(wc)["orm"],
        seed=lambda wc: int(wc.seed),
        task=lambda wc: cfg(wc)["task"],
        precision=lambda wc: cfg(wc)["precision"],
    script:
        "../scripts/active_train.py"


use rule evaluate_orm as active_evaluate with:
    input:
        ckpt=rules.active_train.output.ckpt,
        embeddings=data_file("embeddings", "test"),
        rewards=data_file("rewards", "test"),
    output:
        results=f"{ROUND_DIR}/eval_results.json",
        test_scores=temp(f"{ROUND_DIR}/test_scores.npy"),
        plot=f"{ROUND_DIR}/bon_curve.png",
    log:
        "{exp}/logs/active/{strategy}/seed{seed}/round_{round}/evaluate.log",
    benchmark:
        "{exp}/benchmarks/active/{strategy}/seed{seed}/round_{round}/evaluate.tsv"
    wildcard_constraints:
        strategy="initial|random|uncertainty|dopt",
        seed="[0-9]+",
        round="[0-9]+",


rule active_learning_curve:
    input:
        lambda wc: [p[k] for p in curve_points(wc) for k in ("results", "training")],
    output:
        table="{exp}/active/learning_curve.csv",
        markdown="{exp}/active/learning_curve.md",
        plot=report(
            "{exp}/active/learning_curve.png",
            caption="../report/active_curve.rst",
            category="Active learning",
        ),
    log:
        "{exp}/logs/active/learning_curve.log",
    localrule: True
    conda:
        CPU_ENV
    params:
        points=curve_points,
    script:
        "../scripts/active_curve.py"


rule active_curve:
    input:
        [path.format(exp=MAIN) for path in rules.active_learning_curve.output],
    localrule: True
