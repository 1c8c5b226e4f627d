from embrm.generation.tiny_models import build
from embrm.workflow.rule_io import run

run(
    snakemake,
    build,
    out_policy=snakemake.output.policy,
    out_golden=snakemake.output.golden,
    seed=snakemake.params.seed,
    **snakemake.params.tiny,
)
