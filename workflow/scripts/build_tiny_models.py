from embrm.generation.tiny_models import build
from embrm.rule_io import run

run(
    snakemake,
    build,
    snakemake.output.policy,
    snakemake.output.golden,
    seed=snakemake.params.seed,
    **snakemake.params.tiny,
)
