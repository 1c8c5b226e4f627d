from embrm.rm.ensemble import train_ensemble
from embrm.rm.options import OrmSettings
from embrm.workflow.rule_io import run

i, o, p = snakemake.input, snakemake.output, snakemake.params
run(
    snakemake,
    train_ensemble,
    embeddings=i.embeddings,
    rewards=i.rewards,
    ckpt=o.ckpt,
    summary_json=o.summary_json,
    orm=OrmSettings.of(p.orm),
    seed=p.seed,
    task=p.task,
    precision=p.precision,
    strength=i.strength or None,
    pair_data=p.pair_data,
    pairs_file=i.pairs_file or None,
)
