from embrm.generation.sharded import gather
from embrm.workflow.rule_io import run

run(
    snakemake,
    gather,
    shard_files=snakemake.input.shards,
    out_file=snakemake.output.rewards,
    check_arrays={snakemake.output.rewards: 2},
)
