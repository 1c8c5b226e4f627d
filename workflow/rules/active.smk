"""Active reward modeling (embrm.active): rounds of select, annotate, train, evaluate
under {exp}/active/<strategy>/seed<s>/round_<r>/, and the learning curve. Round 0 (random
pairs) is shared by a seed's strategies: {exp}/active/initial/seed<s>/round_0/."""


include: "active_inputs.smk"


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
        orm=exp_value("orm"),
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
        strategy=STRATEGY_PATTERN,
        seed="[0-9]+",
        round="[1-9][0-9]*",
    localrule: True
    conda:
        CPU_ENV
    threads: ALL_CORES
    params:
        active_cfg=active_cfg,
        orm=exp_value("orm"),
        strategy=lambda wc: wc.strategy,
        seed=lambda wc: int(wc.seed),
        round_index=lambda wc: int(wc.round),
        precision=exp_value("precision"),
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
        strategy=f"initial|{STRATEGY_PATTERN}",
        seed="[0-9]+",
        round="[0-9]+",
    localrule: True
    conda:
        CPU_ENV
    threads: ALL_CORES
    params:
        orm=exp_value("orm"),
        seed=lambda wc: int(wc.seed),
        task=exp_value("task"),
        precision=exp_value("precision"),
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
        strategy=f"initial|{STRATEGY_PATTERN}",
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
        "../scripts/active_learning_curve.py"


rule active_curve:
    input:
        [path.format(exp=MAIN) for path in rules.active_learning_curve.output],
    localrule: True
