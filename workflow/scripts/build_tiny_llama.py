from embrm.generation.tiny_models import build_llama
from embrm.workflow.rule_io import run

run(
    snakemake,
    build_llama,
    out_policy=snakemake.output.policy,
    seed=snakemake.params.seed,
    **snakemake.params.tiny,
)
