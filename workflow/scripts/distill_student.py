from embrm.distill import train_student
from embrm.rule_io import run

p = snakemake.params
run(
    snakemake,
    train_student,
    snakemake.input.embeddings,
    snakemake.input.rewards,
    snakemake.input.split,
    snakemake.output.ckpt,
    snakemake.output.scores,
    snakemake.output.stats,
    p.distill,
    seed=p.seed,
    chunk_prompts=p.chunk_prompts,
    precision=p.precision,
)
