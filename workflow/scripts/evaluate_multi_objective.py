from embrm.multi_objective.steps import evaluate_multi_objective
from embrm.workflow.rule_io import run

run(
    snakemake,
    evaluate_multi_objective,
    tensors=snakemake.input.tensors,
    ratings=snakemake.input.ratings,
    attributes=snakemake.input.attributes,
    embeddings=snakemake.input.embeddings,
    results=snakemake.output.results,
    ratings_cfg=snakemake.params.ratings_cfg,
    mo_cfg=snakemake.params.mo_cfg,
    seed=snakemake.params.seed,
)
