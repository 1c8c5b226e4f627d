from embrm.evaluation import evaluate
from embrm.rule_io import run

p = snakemake.params
run(
    snakemake,
    evaluate,
    snakemake.input.ckpt,
    snakemake.input.embeddings,
    snakemake.input.rewards,
    snakemake.output.results,
    snakemake.output.scores,
    snakemake.output.plot,
    p.evaluation,
    seed=p.seed,
    precision=p.precision,
)
