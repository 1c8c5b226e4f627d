from embrm.multi_objective.steps import fit_multi_objective
from embrm.workflow.rule_io import run

run(
    snakemake,
    fit_multi_objective,
    ratings=snakemake.input.ratings,
    attributes=snakemake.input.attributes,
    embeddings=snakemake.input.embeddings,
    tensors=snakemake.output.tensors,
    settings=snakemake.output.settings,
    ratings_cfg=snakemake.params.ratings_cfg,
    mo_cfg=snakemake.params.mo_cfg,
    seed=snakemake.params.seed,
)
