"""Rated responses (data.source: ratings): read and split them, embed each as the prompt
alone and prompt + response with the step-4 rules (same embedder settings, shards and
GPU requests), fit ArmoRM-style heads (per-attribute ridge, optional length
decorrelation, a gating network of the prompt), evaluate them on the test split and
bundle them for `embrm serve` (the gated reward, per-attribute ratings in extra_logs).
Steps 5-8 need pairs or golden rewards and are not run for rated responses.
"""


rule prepare_ratings:
    input:
        source=local_source(ratings_settings),
    output:
        **{
            f"{split}_{kind}": data_layout.file_pattern("ratings", kind).replace(
                "{split}", split
            )
            for split in ("train", "test")
            for kind in ("ratings", "attributes")
        },
        report=f"{data_layout.FOLDERS['ratings']}/report.json",
    log:
        f"{MAIN}/logs/ratings/{{dataset}}/prepare_ratings.log",
    benchmark:
        f"{MAIN}/benchmarks/ratings/{{dataset}}/prepare_ratings.tsv"
    localrule: True
    conda:
        CPU_ENV
    params:
        cfg=ratings_settings,
    script:
        "../scripts/prepare_ratings.py"


use rule embed_shard as embed_ratings_shard with:
    input:
        samples=ratings_file,
        model=model_input("embedder"),
    output:
        shard=temp(
            f"{MAIN}/ratings/{{dataset}}/{{embedder}}/embeddings/{{split}}.shard{{shard}}.npz"
        ),
    log:
        f"{MAIN}/logs/ratings/{{dataset}}/{{embedder}}/embed_shard/{{split}}.shard{{shard}}.log",
    benchmark:
        f"{MAIN}/benchmarks/ratings/{{dataset}}/{{embedder}}/embed_shard/{{split}}.shard{{shard}}.tsv"


use rule embed_responses as embed_ratings with:
    input:
        shards=lambda wc: expand(
            rules.embed_ratings_shard.output.shard,
            dataset=wc.dataset,
            embedder=wc.embedder,
            split=wc.split,
            shard=range(config["generation"]["embedding"]["shards"]),
        ),
    output:
        embeddings=data_layout.file_pattern("ratings", "embeddings"),
    log:
        f"{MAIN}/logs/ratings/{{dataset}}/{{embedder}}/embed_ratings_{{split}}.log",
    benchmark:
        f"{MAIN}/benchmarks/ratings/{{dataset}}/{{embedder}}/embed_ratings_{{split}}.tsv"


rule fit_multi_objective:
    input:
        ratings=data_file("ratings", "train"),
        attributes=data_file("attributes", "train"),
        embeddings=data_file("embeddings", "train"),
    output:
        tensors="{exp}/multi_objective/heads.safetensors",
        settings="{exp}/multi_objective/heads.json",
    log:
        "{exp}/logs/fit_multi_objective.log",
    benchmark:
        "{exp}/benchmarks/fit_multi_objective.tsv"
    localrule: True
    conda:
        CPU_ENV
    threads: ALL_CORES
    params:
        ratings_cfg=lambda wc: cfg(wc)["data"]["ratings"],
        mo_cfg=lambda wc: cfg(wc)["multi_objective"],
        seed=lambda wc: cfg(wc)["seed"],
    script:
        "../scripts/fit_multi_objective.py"


rule evaluate_multi_objective:
    input:
        tensors=rules.fit_multi_objective.output.tensors,
        settings=rules.fit_multi_objective.output.settings,
        ratings=data_file("ratings", "test"),
        attributes=data_file("attributes", "test"),
        embeddings=data_file("embeddings", "test"),
    output:
        results="{exp}/multi_objective/eval.json",
    log:
        "{exp}/logs/evaluate_multi_objective.log",
    benchmark:
        "{exp}/benchmarks/evaluate_multi_objective.tsv"
    localrule: True
    conda:
        CPU_ENV
    threads: ALL_CORES
    params:
        ratings_cfg=lambda wc: cfg(wc)["data"]["ratings"],
        mo_cfg=lambda wc: cfg(wc)["multi_objective"],
        seed=lambda wc: cfg(wc)["seed"],
    script:
        "../scripts/evaluate_multi_objective.py"


rule multi_objective_model:
    input:
        tensors=rules.fit_multi_objective.output.tensors,
        settings=rules.fit_multi_objective.output.settings,
        # the gated reward's range on the train split scales the server's 0-1 scores
        train_embeddings=data_file("embeddings", "train"),
        # a model the workflow builds is copied into the bundle
        embedder=lambda wc: (
            [bundle_embedder_path(wc)]
            if bundle_embedding(wc)["model"] == "tiny"
            else []
        ),
    output:
        bundle=directory("{exp}/multi_objective/reward_model"),
    log:
        "{exp}/logs/multi_objective_model.log",
    benchmark:
        "{exp}/benchmarks/multi_objective_model.tsv"
    localrule: True
    conda:
        CPU_ENV
    params:
        embedding=bundle_embedding,
        embedder_path=bundle_embedder_path,
        run=ratings_run,
    script:
        "../scripts/multi_objective_model.py"
