from embrm.active.rounds import train_round
from embrm.rm.options import OrmSettings
from embrm.workflow.rule_io import run

i, o, p = snakemake.input, snakemake.output, snakemake.params
run(
    snakemake,
    train_round,
    embeddings=i.embeddings,
    rewards=i.rewards,
    pairs=i.pairs,
    ckpt=o.ckpt,
    summary_json=o.summary_json,
    orm=OrmSettings.of(p.orm),
    seed=p.seed,
    task=p.task,
    precision=p.precision,
)
