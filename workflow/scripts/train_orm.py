from embrm.orm import train_ensemble
from embrm.rule_io import run

p = snakemake.params
run(
    snakemake,
    train_ensemble,
    snakemake.input.embeddings,
    snakemake.input.rewards,
    snakemake.output.ckpt,
    snakemake.output.summary,
    p.orm,
    seed=p.seed,
    task=p.task,
    precision=p.precision,
)
