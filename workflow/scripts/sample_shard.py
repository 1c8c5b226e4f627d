from embrm.generation.sampling import sample_shard
from embrm.workflow.rule_io import run

p, i = snakemake.params, snakemake.input
run(
    snakemake,
    sample_shard,
    prompts_file=i.prompts,
    out_file=snakemake.output.shard,
    shard=int(snakemake.wildcards.shard),
    shards=p.sampling["shards"],
    k=p.k,
    backend=p.sampling["backend"],
    merged_dir=i.merged,
    base_dir=p.base,
    adapter_dir=i.adapter,
    cfg=p.sampling,
    seed=p.seed,
    trust_remote_code=p.trust_remote_code,
    max_lora_rank=p.lora_r,
)
