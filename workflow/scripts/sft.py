from embrm.generation.sft import train_sft
from embrm.rule_io import run

p = snakemake.params
run(
    snakemake,
    train_sft,
    p.base,
    snakemake.input.prompts,
    snakemake.output.adapter,
    snakemake.output.merged,
    p.sft,
    seed=p.seed,
    trust_remote_code=p.trust_remote_code,
)
