"""Steps 1-4: tiny models, prompts, LoRA SFT, sampling shards, golden rewards, embeddings.

The GPU stages (sft, sample_shard, annotate_shard, embed_shard) run
`python -m embrm.generation.entry STAGE JOB` (a guarded __main__, so vLLM's and the
scoring workers' spawned processes start cleanly); JOB is the JSON of the stage
function's keyword arguments. Their threads and SLURM requests come from
cluster.gpu.<stage> through gpu_threads/gpu_resources (common.smk). The other rules
run a `script:` named after the rule, on the submit host.
"""

import sys

from snakemake_interface_executor_plugins.settings import DeploymentMethod

from embrm.generation import golden as gen_golden
from embrm.generation import sampling as gen_sampling
from embrm.generation.entry import job

# the GPU stages' interpreter: the rule's conda environment under --sdm conda (as a
# `script:` would use), else the one running snakemake
GEN_PYTHON = (
    "python"
    if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
    else sys.executable
)
GEN_ENTRY = "{params.python:q} -m embrm.generation.entry {params.stage} {params.job:q} > {log:q} 2>&1"


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
        base=model_input("policy"),
        deepspeed=lambda wc: sft_deepspeed() or [],
    output:
        adapter=directory(f"{MAIN}/generate/{{policy}}/sft/adapter"),
        merged=directory(f"{MAIN}/generate/{{policy}}/sft/merged"),
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
        python=GEN_PYTHON,
        stage="sft",
        job=job(
            base_model=model_path("policy"),
            prompts_file=lambda wc, input, output: input.prompts,
            out_adapter=lambda wc, input, output: output.adapter,
            out_merged=lambda wc, input, output: output.merged,
            cfg=lambda wc: {
                **config["generation"]["sft"],
                "deepspeed": sft_deepspeed(),
            },
            seed=config["seed"],
            trust_remote_code=config["generation"]["trust_remote_code"],
        ),
    shell:
        GEN_ENTRY


rule sample_shard:
    input:
        prompts=rules.prepare_prompts.output.prompts,
        adapter=rules.sft.output.adapter,
        merged=rules.sft.output.merged,
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
        python=GEN_PYTHON,
        stage="sample",
        job=job(
            prompts_file=lambda wc, input, output: input.prompts,
            out_file=lambda wc, input, output: output.shard,
            shard=lambda wc: int(wc.shard),
            shards=config["generation"]["sampling"]["shards"],
            k=lambda wc: config["generation"]["sampling"][f"k_{wc.split}"],
            backend=config["generation"]["sampling"]["backend"],
            merged_dir=lambda wc, input, output: input.merged,
            base_dir=model_path("policy"),
            adapter_dir=lambda wc, input, output: input.adapter,
            cfg=config["generation"]["sampling"],
            seed=config["seed"],
            trust_remote_code=config["generation"]["trust_remote_code"],
            max_lora_rank=config["generation"]["sft"]["lora_r"],
            tensor_parallel_size=config["cluster"]["gpu"]["sample"]["gpus"],
            max_model_len=gen_sampling.max_model_len(config["generation"]),
        ),
    shell:
        GEN_ENTRY


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
        python=GEN_PYTHON,
        stage="annotate",
        job=job(
            samples_file=lambda wc, input, output: input.samples,
            out_file=lambda wc, input, output: output.shard,
            model_path=model_path("golden"),
            cfg=gen_golden.scoring_settings(config),
            shard=lambda wc: int(wc.shard),
            shards=config["generation"]["golden"]["shards"],
            trust_remote_code=config["generation"]["trust_remote_code"],
        ),
    shell:
        GEN_ENTRY


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
        python=GEN_PYTHON,
        stage="embed",
        job=job(
            samples_file=lambda wc, input, output: input.samples,
            out_file=lambda wc, input, output: output.shard,
            model_path=model_path("embedder"),
            cfg=lambda wc: DATA.embedding(wc.embedder),
            shard=lambda wc: int(wc.shard),
            shards=config["generation"]["embedding"]["shards"],
            trust_remote_code=config["generation"]["trust_remote_code"],
        ),
    shell:
        GEN_ENTRY


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
