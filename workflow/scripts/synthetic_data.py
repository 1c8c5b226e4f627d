from embrm.data.synthetic import generate
from embrm.workflow.rule_io import run

run(snakemake, generate, **dict(snakemake.output.items()), **snakemake.params.synthetic)
