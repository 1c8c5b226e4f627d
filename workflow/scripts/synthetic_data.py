from embrm.rule_io import run
from embrm.synthetic import generate

run(snakemake, generate, dict(snakemake.output), **snakemake.params.synthetic)
