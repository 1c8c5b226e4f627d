from embrm.active.rounds import initial_round
from embrm.rm.options import OrmSettings
from embrm.workflow.rule_io import run

i, o, p = snakemake.input, snakemake.output, snakemake.params
run(
    snakemake,
    initial_round,
    rewards=i.rewards,
    pairs_out=o.pairs,
    active_cfg=p.active_cfg,
    orm=OrmSettings.of(p.orm),
    seed=p.seed,
)
