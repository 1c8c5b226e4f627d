"""Standard benchmarks (evaluation.benchmarks): a test-only source read and checked once,
embedded once per embedder by the step-4 rules (reused by `use rule`), and scored with
each experiment's ensemble into <experiment>/benchmark_eval/<name>.{json,md,png}."""


rule prepare_benchmark:
    input:
        source=local_source(benchmark_settings),
    output:
        pairs=data_layout.file_pattern("benchmarks", "pairs").replace("{split}", "test"),
        report=f"{data_layout.FOLDERS['benchmarks']}/report.json",
    log:
        f"{MAIN}/logs/benchmark_sets/{{benchmark}}/prepare_benchmark.log",
    benchmark:
        f"{MAIN}/benchmarks/benchmark_sets/{{benchmark}}/prepare_benchmark.tsv"
    localrule: True
    conda:
        CPU_ENV
    params:
        settings=benchmark_settings,
    script:
        "../scripts/prepare_benchmark.py"


use rule embed_shard as embed_benchmark_shard with:
    input:
        samples=lambda wc: rules.prepare_benchmark.output.pairs.format(
            benchmark=wc.benchmark
        ),
        model=model_input("embedder"),
    output:
        shard=temp(
            f"{MAIN}/benchmark_sets/{{benchmark}}/{{embedder}}/embeddings/{{split}}.shard{{shard}}.npz"
        ),
    log:
        f"{MAIN}/logs/benchmark_sets/{{benchmark}}/{{embedder}}/embed_shard/{{split}}.shard{{shard}}.log",
    benchmark:
        f"{MAIN}/benchmarks/benchmark_sets/{{benchmark}}/{{embedder}}/embed_shard/{{split}}.shard{{shard}}.tsv"


use rule embed_responses as embed_benchmark with:
    input:
        shards=lambda wc: expand(
            rules.embed_benchmark_shard.output.shard,
            benchmark=wc.benchmark,
            embedder=wc.embedder,
            split=wc.split,
            shard=range(config["generation"]["embedding"]["shards"]),
        ),
    output:
        embeddings=data_layout.file_pattern("benchmarks", "embeddings"),
    log:
        f"{MAIN}/logs/benchmark_sets/{{benchmark}}/{{embedder}}/embed_benchmark_{{split}}.log",
    benchmark:
        f"{MAIN}/benchmarks/benchmark_sets/{{benchmark}}/{{embedder}}/embed_benchmark_{{split}}.tsv"


rule evaluate_benchmark:
    input:
        ckpt=rules.train_orm.output.ckpt,
        embeddings=lambda wc: data_layout.benchmark_path(
            cfg(wc), wc.benchmark, "embeddings"
        ),
        pairs=lambda wc: data_layout.benchmark_path(cfg(wc), wc.benchmark, "pairs"),
    output:
        results="{exp}/benchmark_eval/{benchmark}.json",
        table=report(
            "{exp}/benchmark_eval/{benchmark}.md",
            caption="../report/benchmark_table.rst",
            category="Benchmarks",
        ),
        figure=report(
            "{exp}/benchmark_eval/{benchmark}.png",
            caption="../report/benchmark_figure.rst",
            category="Benchmarks",
        ),
    log:
        "{exp}/logs/evaluate_benchmark/{benchmark}.log",
    benchmark:
        "{exp}/benchmarks/evaluate_benchmark/{benchmark}.tsv"
    localrule: True
    conda:
        CPU_ENV
    threads: ALL_CORES
    params:
        layout=lambda wc: DATA_VARIANTS.benchmark(wc.benchmark)["layout"],
        eval_cfg=lambda wc: cfg(wc)["evaluation"],
        seed=lambda wc: cfg(wc)["seed"],
        precision=lambda wc: cfg(wc)["precision"],
    script:
        "../scripts/evaluate_benchmark.py"
