"""Steps 1-4: tiny models, prompts, LoRA SFT, sampling shards, golden rewards, embeddings."""


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
        "../scripts/sft.py"


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
        "../scripts/sample_shard.py"


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


rule annotate_golden:
    input:
        samples=rules.gather_samples.output.samples,
        model=model_input("golden"),
    output:
        rewards=data_layout.file_pattern("generate", "rewards"),
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
        "../scripts/annotate_golden.py"


rule embed_responses:
    input:
        samples=rules.gather_samples.output.samples,
        model=model_input("embedder"),
    output:
        embeddings=data_layout.file_pattern("generate", "embeddings"),
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
        "../scripts/embed_responses.py"
