"""Steps 1-4: tiny models, prompts, LoRA SFT, sampling shards, golden rewards, embeddings."""


localrules:
    build_tiny_models,
    prepare_prompts,
    gather_samples,


rule build_tiny_models:
    output:
        policy=directory(gen_models.TINY_POLICY),
        golden=directory(gen_models.TINY_GOLDEN),
    log:
        f"{MAIN}/logs/build_tiny_models.log",
    benchmark:
        f"{MAIN}/benchmarks/build_tiny_models.tsv"
    conda:
        CPU_ENV
    params:
        tiny=lambda wc: config["generation"]["tiny"],
        seed=lambda wc: config["seed"],
    script:
        "../scripts/gen_tiny_models.py"


rule prepare_prompts:
    input:
        tokenizer=model_input("policy"),
    output:
        f"{MAIN}/generate/{{policy}}/prompts/{{split}}.jsonl",
    log:
        f"{MAIN}/logs/generate/{{policy}}/prepare_prompts_{{split}}.log",
    benchmark:
        f"{MAIN}/benchmarks/generate/{{policy}}/prepare_prompts_{{split}}.tsv"
    conda:
        CPU_ENV
    params:
        prompts=lambda wc: config["generation"]["prompts"],
        tokenizer=model_path("policy"),
        trust_remote_code=lambda wc: config["generation"]["trust_remote_code"],
    script:
        "../scripts/gen_prompts.py"


rule sft:
    input:
        prompts=f"{MAIN}/generate/{{policy}}/prompts/train.jsonl",
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
    threads: gpu_res("cpus_per_gpu")
    resources:
        slurm_partition=gpu_res("partition"),
        slurm_account=gpu_res("account"),
        gpu=gpu_res("gpus"),
        cpus_per_gpu=gpu_res("cpus_per_gpu"),
        mem_mb=gpu_res("mem_mb"),
        runtime=gpu_res("runtime"),
    params:
        base=model_path("policy"),
        sft=lambda wc: {**config["generation"]["sft"], "deepspeed": sft_deepspeed()},
        seed=lambda wc: config["seed"],
        trust_remote_code=lambda wc: config["generation"]["trust_remote_code"],
    script:
        "../scripts/gen_sft.py"


rule sample_shard:
    input:
        prompts=f"{MAIN}/generate/{{policy}}/prompts/{{split}}.jsonl",
        adapter=f"{MAIN}/generate/{{policy}}/sft/adapter",
        merged=f"{MAIN}/generate/{{policy}}/sft/merged",
    output:
        f"{MAIN}/generate/{{policy}}/samples/{{split}}.shard{{shard}}.jsonl",
    log:
        f"{MAIN}/logs/generate/{{policy}}/sample_shard/{{split}}.shard{{shard}}.log",
    benchmark:
        f"{MAIN}/benchmarks/generate/{{policy}}/sample_shard/{{split}}.shard{{shard}}.tsv"
    conda:
        GPU_ENV
    threads: gpu_res("cpus_per_gpu")
    resources:
        slurm_partition=gpu_res("partition"),
        slurm_account=gpu_res("account"),
        gpu=gpu_res("gpus"),
        cpus_per_gpu=gpu_res("cpus_per_gpu"),
        mem_mb=gpu_res("mem_mb"),
        runtime=gpu_res("runtime"),
    params:
        sampling=lambda wc: config["generation"]["sampling"],
        k=lambda wc: config["generation"]["sampling"][f"k_{wc.split}"],
        lora_r=lambda wc: config["generation"]["sft"]["lora_r"],
        base=model_path("policy"),
        seed=lambda wc: config["seed"],
        trust_remote_code=lambda wc: config["generation"]["trust_remote_code"],
    script:
        "../scripts/gen_sample_shard.py"


rule gather_samples:
    input:
        prompts=f"{MAIN}/generate/{{policy}}/prompts/{{split}}.jsonl",
        shards=lambda wc: expand(
            f"{MAIN}/generate/{wc.policy}/samples/{wc.split}.shard{{shard}}.jsonl",
            shard=range(config["generation"]["sampling"]["shards"]),
        ),
    output:
        f"{MAIN}/data/generate/{{policy}}/{{split}}_samples.jsonl",
    log:
        f"{MAIN}/logs/generate/{{policy}}/gather_samples_{{split}}.log",
    benchmark:
        f"{MAIN}/benchmarks/generate/{{policy}}/gather_samples_{{split}}.tsv"
    conda:
        CPU_ENV
    script:
        "../scripts/gen_gather.py"


rule annotate_golden:
    input:
        samples=f"{MAIN}/data/generate/{{policy}}/{{split}}_samples.jsonl",
        model=model_input("golden"),
    output:
        f"{MAIN}/data/generate/{{policy}}/{{split}}_rewards.npy",
    log:
        f"{MAIN}/logs/generate/{{policy}}/annotate_golden_{{split}}.log",
    benchmark:
        f"{MAIN}/benchmarks/generate/{{policy}}/annotate_golden_{{split}}.tsv"
    conda:
        GPU_ENV
    threads: gpu_res("cpus_per_gpu")
    resources:
        slurm_partition=gpu_res("partition"),
        slurm_account=gpu_res("account"),
        gpu=gpu_res("gpus"),
        cpus_per_gpu=gpu_res("cpus_per_gpu"),
        mem_mb=gpu_res("mem_mb"),
        runtime=gpu_res("runtime"),
    params:
        model=model_path("golden"),
        golden=lambda wc: config["generation"]["golden"],
        trust_remote_code=lambda wc: config["generation"]["trust_remote_code"],
    script:
        "../scripts/gen_annotate.py"


rule embed_responses:
    input:
        samples=f"{MAIN}/data/generate/{{policy}}/{{split}}_samples.jsonl",
        model=model_input("embedder"),
    output:
        f"{MAIN}/data/generate/{{policy}}/{{embedder}}/{{split}}_embeddings.npy",
    log:
        f"{MAIN}/logs/generate/{{policy}}/{{embedder}}/embed_responses_{{split}}.log",
    benchmark:
        f"{MAIN}/benchmarks/generate/{{policy}}/{{embedder}}/embed_responses_{{split}}.tsv"
    conda:
        GPU_ENV
    threads: gpu_res("cpus_per_gpu")
    resources:
        slurm_partition=gpu_res("partition"),
        slurm_account=gpu_res("account"),
        gpu=gpu_res("gpus"),
        cpus_per_gpu=gpu_res("cpus_per_gpu"),
        mem_mb=gpu_res("mem_mb"),
        runtime=gpu_res("runtime"),
    params:
        model=model_path("embedder"),
        embedding=lambda wc: DATA.embedding(wc.embedder),
        trust_remote_code=lambda wc: config["generation"]["trust_remote_code"],
    script:
        "../scripts/gen_embed.py"
