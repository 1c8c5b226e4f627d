from embrm.generation.sharded import gather
from embrm.rule_io import run

run(snakemake, gather, snakemake.input, snakemake.output[0])
