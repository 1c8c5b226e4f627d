"""Steps 1-4: tiny models, prompts, LoRA SFT, sampling shards, golden rewards, embeddings.

The GPU stages (sft, sample_shard, annotate_shard, embed_shard) run
`python -m embrm.generation.entry STAGE JOB --paths PATHS --gpus N --settings SETTINGS`
(a guarded __main__, so vLLM's and the scoring workers' spawned processes start
cleanly), with the interpreter running snakemake. JOB (a param Snakemake compares with
the last run's: a change reruns the job) is the JSON of the stage function's keyword
arguments that decide its output, PATHS (a param derived from files) its files; the
job's GPUs and the settings that change no output come from its resources, so
changing them reruns nothing. Threads and requests come from cluster.gpu.<stage> through
gpu_threads/gpu_resources (common.smk). The other rules run a `script:` named after
the rule, on the submit host.
"""

from embrm.generation import golden as gen_golden
from embrm.generation import sampling as gen_sampling
from embrm.generation.entry import job


rule build_tiny_models:
    output:
        policy=directory(gen_models.TINY_POLICY),
        golden=directory(gen_models.TINY_GOLDEN),
    log:
        f"{MAIN}/logs/build_tiny_models.log",
    benchmark:
        f"{MAIN}/benchmarks/build_tiny_models.tsv"
    localrule: True
    conda:
        CPU_ENV
    params:
        tiny=lambda wc: config["generation"]["tiny"],
        seed=lambda wc: config["seed"],
    script:
        "../scripts/build_tiny_models.py"


rule build_tiny_llama:
    output:
        policy=directory(gen_models.TINY_LLAMA),
    log:
        f"{MAIN}/logs/build_tiny_llama.log",
    benchmark:
        f"{MAIN}/benchmarks/build_tiny_llama.tsv"
    localrule: True
    conda:
        CPU_ENV
    params:
        tiny=lambda wc: config["generation"]["tiny"],
        seed=lambda wc: config["seed"],
    script:
        "../scripts/build_tiny_llama.py"


rule prepare_prompts:
    input:
        tokenizer=model_input("policy"),
    output:
        prompts=f"{MAIN}/generate/{{policy}}/prompts/{{split}}.jsonl",
    log:
        f"{MAIN}/logs/generate/{{policy}}/prepare_prompts_{{split}}.log",
    benchmark:
        f"{MAIN}/benchmarks/generate/{{policy}}/prepare_prompts_{{split}}.tsv"
    localrule: True
    conda:
        CPU_ENV
    params:
        prompts=lambda wc: config["generation"]["prompts"],
        tokenizer=model_path("policy"),
        trust_remote_code=lambda wc: config["generation"]["trust_remote_code"],
    script:
        "../scripts/prepare_prompts.py"


rule sft:
    input:
        prompts=lambda wc: rules.prepare_prompts.output.prompts.format(
            policy=wc.policy, split="train"
        ),
        test_prompts=lambda wc: rules.prepare_prompts.output.prompts.format(
            policy=wc.policy, split="test"
        ),
        base=model_input("policy"),
        deepspeed=lambda wc: sft_deepspeed() or [],
        data=lambda wc: sft_data_file() or [],
    output:
        **(
            {"merged": directory(f"{MAIN}/generate/{{policy}}/sft/merged")}
            if merged_model_needed()
            else {}
        ),
        adapter=directory(f"{MAIN}/generate/{{policy}}/sft/adapter"),
    log:
        f"{MAIN}/logs/generate/{{policy}}/sft.log",
    benchmark:
        f"{MAIN}/benchmarks/generate/{{policy}}/sft.tsv"
    conda:
        GPU_ENV
    threads: gpu_threads("sft")
    resources:
        **gpu_resources("sft"),
    params:
        **job(
            base_model=model_path("policy"),
            prompts_file=lambda wc, input, output: input.prompts,
            test_prompts_file=lambda wc, input, output: input.test_prompts,
            out_adapter=lambda wc, input, output: output.adapter,
            out_merged=lambda wc, input, output: output.get("merged"),
            cfg=lambda wc: sft_settings(),
            seed=config["seed"],
            trust_remote_code=config["generation"]["trust_remote_code"],
        ),
        python=interpreter,
    shell:
        gen_entry("sft")


rule sample_shard:
    input:
        prompts=rules.prepare_prompts.output.prompts,
        adapter=rules.sft.output.adapter,
        merged=lambda wc: (
            rules.sft.output.merged.format(policy=wc.policy)
            if merged_model_needed()
            else []
        ),
    output:
        shard=f"{MAIN}/generate/{{policy}}/samples/{{split}}.shard{{shard}}.jsonl",
    log:
        f"{MAIN}/logs/generate/{{policy}}/sample_shard/{{split}}.shard{{shard}}.log",
    benchmark:
        f"{MAIN}/benchmarks/generate/{{policy}}/sample_shard/{{split}}.shard{{shard}}.tsv"
    conda:
        GPU_ENV
    threads: gpu_threads("sample")
    resources:
        **gpu_resources("sample"),
    params:
        **job(
            prompts_file=lambda wc, input, output: input.prompts,
            out_file=lambda wc, input, output: output.shard,
            shard=lambda wc: int(wc.shard),
            shards=config["generation"]["sampling"]["shards"],
            k=lambda wc: config["generation"]["sampling"][f"k_{wc.split}"],
            backend=config["generation"]["sampling"]["backend"],
            merged_dir=lambda wc, input, output: input.merged or None,
            base_dir=model_path("policy"),
            adapter_dir=lambda wc, input, output: input.adapter,
            cfg=gpu_requests.output_settings(config, "sample"),
            seed=config["seed"],
            trust_remote_code=config["generation"]["trust_remote_code"],
            max_lora_rank=config["generation"]["sft"]["lora_r"],
            max_model_len=gen_sampling.max_model_len(config["generation"]),
        ),
        python=interpreter,
    shell:
        gen_entry("sample")


rule gather_samples:
    input:
        prompts=rules.prepare_prompts.output.prompts,
        shards=lambda wc: expand(
            rules.sample_shard.output.shard,
            policy=wc.policy,
            split=wc.split,
            shard=range(config["generation"]["sampling"]["shards"]),
        ),
    output:
        samples=data_layout.file_pattern("generate", "samples"),
    log:
        f"{MAIN}/logs/generate/{{policy}}/gather_samples_{{split}}.log",
    benchmark:
        f"{MAIN}/benchmarks/generate/{{policy}}/gather_samples_{{split}}.tsv"
    localrule: True
    conda:
        CPU_ENV
    script:
        "../scripts/gather_samples.py"


rule annotate_shard:
    input:
        samples=rules.gather_samples.output.samples,
        model=model_input("golden"),
    output:
        shard=temp(f"{MAIN}/generate/{{policy}}/rewards/{{split}}.shard{{shard}}.npz"),
    log:
        f"{MAIN}/logs/generate/{{policy}}/annotate_shard/{{split}}.shard{{shard}}.log",
    benchmark:
        f"{MAIN}/benchmarks/generate/{{policy}}/annotate_shard/{{split}}.shard{{shard}}.tsv"
    conda:
        GPU_ENV
    threads: gpu_threads("annotate")
    resources:
        **gpu_resources("annotate"),
    params:
        **job(
            samples_file=lambda wc, input, output: input.samples,
            out_file=lambda wc, input, output: output.shard,
            model_path=model_path("golden"),
            cfg=gen_golden.scoring_settings(config),
            shard=lambda wc: int(wc.shard),
            shards=config["generation"]["golden"]["shards"],
            trust_remote_code=config["generation"]["trust_remote_code"],
        ),
        python=interpreter,
    shell:
        gen_entry("annotate")


rule annotate_golden:
    input:
        shards=lambda wc: expand(
            rules.annotate_shard.output.shard,
            policy=wc.policy,
            split=wc.split,
            shard=range(config["generation"]["golden"]["shards"]),
        ),
    output:
        rewards=data_layout.file_pattern("generate", "rewards"),
    log:
        f"{MAIN}/logs/generate/{{policy}}/annotate_golden_{{split}}.log",
    benchmark:
        f"{MAIN}/benchmarks/generate/{{policy}}/annotate_golden_{{split}}.tsv"
    localrule: True
    conda:
        CPU_ENV
    script:
        "../scripts/annotate_golden.py"


rule embed_shard:
    input:
        samples=rules.gather_samples.output.samples,
        model=model_input("embedder"),
    output:
        shard=temp(
            f"{MAIN}/generate/{{policy}}/{{embedder}}/embeddings/{{split}}.shard{{shard}}.npz"
        ),
    log:
        f"{MAIN}/logs/generate/{{policy}}/{{embedder}}/embed_shard/{{split}}.shard{{shard}}.log",
    benchmark:
        f"{MAIN}/benchmarks/generate/{{policy}}/{{embedder}}/embed_shard/{{split}}.shard{{shard}}.tsv"
    conda:
        GPU_ENV
    threads: gpu_threads("embed")
    resources:
        **gpu_resources("embed"),
    params:
        **job(
            samples_file=lambda wc, input, output: input.samples,
            out_file=lambda wc, input, output: output.shard,
            model_path=model_path("embedder"),
            cfg=lambda wc: DATA_VARIANTS.embedding(wc.embedder),
            shard=lambda wc: int(wc.shard),
            shards=config["generation"]["embedding"]["shards"],
            trust_remote_code=config["generation"]["trust_remote_code"],
        ),
        python=interpreter,
    shell:
        gen_entry("embed")


rule embed_responses:
    input:
        shards=lambda wc: expand(
            rules.embed_shard.output.shard,
            policy=wc.policy,
            embedder=wc.embedder,
            split=wc.split,
            shard=range(config["generation"]["embedding"]["shards"]),
        ),
    output:
        embeddings=data_layout.file_pattern("generate", "embeddings"),
    log:
        f"{MAIN}/logs/generate/{{policy}}/{{embedder}}/embed_responses_{{split}}.log",
    benchmark:
        f"{MAIN}/benchmarks/generate/{{policy}}/{{embedder}}/embed_responses_{{split}}.tsv"
    localrule: True
    conda:
        CPU_ENV
    script:
        "../scripts/embed_responses.py"
