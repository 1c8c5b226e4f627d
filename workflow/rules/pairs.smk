"""Human preference pairs (data.source: pairs): read and split them (or, with
data.pairs.from_ratings, derive them from the prepared rated responses of data.ratings,
each with its rating gap as margin), embed them with the step-4 rules (same embedder settings, shards and GPU requests), and evaluate step 5's
ensemble on the held-out pairs against a logistic-regression floor. Steps 7-8,
best-of-N and the report figures need golden rewards and are not run for pair data.
"""


rule prepare_pairs:
    input:
        unpack(pairs_source),
    output:
        **{
            f"{split}_{kind}": data_layout.file_pattern("pairs", kind).replace(
                "{split}", split
            )
            for split in ("train", "test")
            for kind in ("pairs", "preferences")
        },
        report=f"{data_layout.FOLDERS['pairs']}/report.json",
    log:
        f"{MAIN}/logs/pairs/{{dataset}}/prepare_pairs.log",
    benchmark:
        f"{MAIN}/benchmarks/pairs/{{dataset}}/prepare_pairs.tsv"
    localrule: True
    conda:
        CPU_ENV
    params:
        cfg=pairs_settings,
    script:
        "../scripts/prepare_pairs.py"


use rule embed_shard as embed_pairs_shard with:
    input:
        samples=pairs_file,
        model=model_input("embedder"),
    output:
        shard=temp(
            f"{MAIN}/pairs/{{dataset}}/{{embedder}}/embeddings/{{split}}.shard{{shard}}.npz"
        ),
    log:
        f"{MAIN}/logs/pairs/{{dataset}}/{{embedder}}/embed_shard/{{split}}.shard{{shard}}.log",
    benchmark:
        f"{MAIN}/benchmarks/pairs/{{dataset}}/{{embedder}}/embed_shard/{{split}}.shard{{shard}}.tsv"


use rule embed_responses as embed_pairs with:
    input:
        shards=lambda wc: expand(
            rules.embed_pairs_shard.output.shard,
            dataset=wc.dataset,
            embedder=wc.embedder,
            split=wc.split,
            shard=range(config["generation"]["embedding"]["shards"]),
        ),
    output:
        embeddings=data_layout.file_pattern("pairs", "embeddings"),
    log:
        f"{MAIN}/logs/pairs/{{dataset}}/{{embedder}}/embed_pairs_{{split}}.log",
    benchmark:
        f"{MAIN}/benchmarks/pairs/{{dataset}}/{{embedder}}/embed_pairs_{{split}}.tsv"


rule fit_pair_baseline:
    input:
        train_embeddings=data_file("embeddings", "train"),
        train_preferences=data_file("preferences", "train"),
        test_embeddings=data_file("embeddings", "test"),
        test_preferences=data_file("preferences", "test"),
    output:
        test_scores="{exp}/pair_eval/baseline_test_scores.npy",
        summary_json="{exp}/pair_eval/baseline.json",
    log:
        "{exp}/logs/fit_pair_baseline.log",
    benchmark:
        "{exp}/benchmarks/fit_pair_baseline.tsv"
    localrule: True
    conda:
        CPU_ENV
    threads: ALL_CORES
    params:
        seed=exp_value("seed"),
    script:
        "../scripts/fit_pair_baseline.py"


rule evaluate_pairs:
    input:
        ckpt=rules.train_orm.output.ckpt,
        embeddings=data_file("embeddings", "test"),
        preferences=data_file("preferences", "test"),
        pairs=data_file("pairs", "test"),
        baseline_scores=rules.fit_pair_baseline.output.test_scores,
    output:
        results="{exp}/pair_eval_results.json",
        test_scores="{exp}/pair_eval/test_scores.npy",
        reliability_plot=report(
            "{exp}/pair_eval/reliability.png",
            caption="../report/pair_reliability.rst",
            category="Evaluation",
        ),
        margins_plot=report(
            "{exp}/pair_eval/margins.png",
            caption="../report/pair_margins.rst",
            category="Evaluation",
        ),
    log:
        "{exp}/logs/evaluate_pairs.log",
    benchmark:
        "{exp}/benchmarks/evaluate_pairs.tsv"
    localrule: True
    conda:
        CPU_ENV
    threads: ALL_CORES
    params:
        eval_cfg=exp_value("evaluation"),
        precision=exp_value("precision"),
    script:
        "../scripts/evaluate_pairs.py"
