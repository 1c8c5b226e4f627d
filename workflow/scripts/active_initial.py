from embrm.active.rounds import initial_round
from embrm.workflow.rule_io import run

i, o, p = snakemake.input, snakemake.output, snakemake.params
run(
    snakemake,
    initial_round,
    rewards=i.rewards,
    pairs_out=o.pairs,
    active_cfg=p.active_cfg,
    orm_cfg=p.orm_cfg,
    seed=p.seed,
)
