from embrm.calibrate.distill import train_student
from embrm.workflow.rule_io import run

i, o, p = snakemake.input, snakemake.output, snakemake.params
run(
    snakemake,
    train_student,
    embeddings=i.embeddings,
    rewards=i.rewards,
    split=i.split,
    ckpt=o.ckpt,
    scores=o.scores,
    stats=o.stats,
    distill_cfg=p.distill_cfg,
    seed=p.seed,
    chunk_prompts=p.chunk_prompts,
    precision=p.precision,
)
