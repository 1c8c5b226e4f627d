"""Step 5 (ORM ensemble training) and step 6 (evaluation on the test split; for pair
data, evaluate_pairs in pairs.smk)."""


rule preference_strength:
    input:
        embeddings=data_file("embeddings", "train"),
        # golden rewards, or for pair data the human preferences (label_file)
        rewards=label_file("train"),
    output:
        strength="{exp}/orm/preference_strength.npy",
        report_json="{exp}/orm/preference_strength.json",
        plot=report(
            "{exp}/orm/preference_strength.png",
            caption="../report/preference_strength.rst",
            category="Evaluation",
        ),
    log:
        "{exp}/logs/preference_strength.log",
    benchmark:
        "{exp}/benchmarks/preference_strength.tsv"
    localrule: True
    conda:
        CPU_ENV
    threads: ALL_CORES
    params:
        orm=exp_value("orm"),
        seed=exp_value("seed"),
        task=exp_value("task"),
        precision=exp_value("precision"),
        pair_data=pair_data,
    script:
        "../scripts/preference_strength.py"


rule train_orm:
    input:
        embeddings=data_file("embeddings", "train"),
        # golden rewards, or for pair data the human preferences (label_file)
        rewards=label_file("train"),
        # only the noise remedies and the adaptive margin read a first ensemble
        strength=lambda wc: (
            rules.preference_strength.output.strength.format(exp=wc.exp)
            if orm_settings(wc).needs_strength
            else []
        ),
        # the human pairs' own margins (orm.margin_source: given)
        pairs_file=given_margins,
    output:
        ckpt="{exp}/orm/ensemble.ckpt",
        summary_json="{exp}/orm/training.json",
    log:
        "{exp}/logs/train_orm.log",
    benchmark:
        "{exp}/benchmarks/train_orm.tsv"
    group:
        CPU_GROUP
    localrule: not CPU_SUBMIT
    conda:
        CPU_ENV
    # Snakemake exports OMP/MKL_NUM_THREADS=threads to every job (default 1)
    threads: cpu_threads()
    resources:
        **cpu_resources("train_orm"),
    params:
        orm=exp_value("orm"),
        seed=exp_value("seed"),
        task=exp_value("task"),
        precision=exp_value("precision"),
        pair_data=pair_data,
    script:
        "../scripts/train_orm.py"


rule evaluate_orm:
    input:
        ckpt=rules.train_orm.output.ckpt,
        embeddings=data_file("embeddings", "test"),
        rewards=data_file("rewards", "test"),
        samples=test_samples,
    output:
        results="{exp}/eval_results.json",
        test_scores="{exp}/eval/test_scores.npy",
        plot=report(
            "{exp}/bon_curve.png",
            caption="../report/bon_curve.rst",
            category="Evaluation",
        ),
    log:
        "{exp}/logs/evaluate_orm.log",
    benchmark:
        "{exp}/benchmarks/evaluate_orm.tsv"
    group:
        CPU_GROUP
    localrule: not CPU_SUBMIT
    conda:
        CPU_ENV
    threads: cpu_threads()
    resources:
        **cpu_resources("evaluate_orm"),
    params:
        eval_cfg=exp_value("evaluation"),
        seed=exp_value("seed"),
        precision=exp_value("precision"),
    script:
        "../scripts/evaluate_orm.py"
