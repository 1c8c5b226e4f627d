from embrm.generation.sampling import gather_shards
from embrm.rule_io import run

run(snakemake, gather_shards, snakemake.input.prompts, snakemake.input.shards, snakemake.output[0])
