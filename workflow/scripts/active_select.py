from embrm.active.rounds import selection_round
from embrm.rm.options import OrmSettings
from embrm.workflow.rule_io import run

i, o, p = snakemake.input, snakemake.output, snakemake.params
run(
    snakemake,
    selection_round,
    embeddings=i.embeddings,
    rewards=i.rewards,
    previous_pairs=i.previous_pairs,
    previous_ckpt=i.previous_ckpt,
    pairs_out=o.pairs,
    active_cfg=p.active_cfg,
    orm=OrmSettings.of(p.orm),
    strategy=p.strategy,
    seed=p.seed,
    round_index=p.round_index,
    precision=p.precision,
)
