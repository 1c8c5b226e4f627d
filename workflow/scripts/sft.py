from embrm.generation.sft import train_sft
from embrm.workflow.rule_io import run

p = snakemake.params
run(
    snakemake,
    train_sft,
    base_model=p.base,
    prompts_file=snakemake.input.prompts,
    out_adapter=snakemake.output.adapter,
    out_merged=snakemake.output.merged,
    cfg=p.sft,
    seed=p.seed,
    trust_remote_code=p.trust_remote_code,
)
