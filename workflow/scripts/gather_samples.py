from embrm.generation.sampling import gather_shards
from embrm.workflow.rule_io import run

run(
    snakemake,
    gather_shards,
    prompts_file=snakemake.input.prompts,
    shard_files=snakemake.input.shards,
    out_file=snakemake.output.samples,
)
