"""Step 5 (ORM ensemble training) and step 6 (evaluation on the test split; for pair
data, evaluate_pairs in pairs.smk)."""


rule train_orm:
    input:
        embeddings=data_file("embeddings", "train"),
        # golden rewards, or for pair data the human preferences (label_file)
        rewards=label_file("train"),
    output:
        ckpt="{exp}/orm/ensemble.ckpt",
        summary_json="{exp}/orm/training.json",
    log:
        "{exp}/logs/train_orm.log",
    benchmark:
        "{exp}/benchmarks/train_orm.tsv"
    localrule: True
    conda:
        CPU_ENV
    # Snakemake exports OMP/MKL_NUM_THREADS=threads to every job (default 1)
    threads: ALL_CORES
    params:
        orm_cfg=lambda wc: cfg(wc)["orm"],
        seed=lambda wc: cfg(wc)["seed"],
        task=lambda wc: cfg(wc)["task"],
        precision=lambda wc: cfg(wc)["precision"],
        pair_data=pair_data,
    script:
        "../scripts/train_orm.py"


rule evaluate_orm:
    input:
        ckpt=rules.train_orm.output.ckpt,
        embeddings=data_file("embeddings", "test"),
        rewards=data_file("rewards", "test"),
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
    localrule: True
    conda:
        CPU_ENV
    threads: ALL_CORES
    params:
        eval_cfg=lambda wc: cfg(wc)["evaluation"],
        seed=lambda wc: cfg(wc)["seed"],
        precision=lambda wc: cfg(wc)["precision"],
    script:
        "../scripts/evaluate_orm.py"
