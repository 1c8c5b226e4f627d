from embrm.evaluate.strength import measure_strength
from embrm.workflow.rule_io import run

i, o, p = snakemake.input, snakemake.output, snakemake.params
run(
    snakemake,
    measure_strength,
    embeddings=i.embeddings,
    rewards=i.rewards,
    strength=o.strength,
    report_json=o.report_json,
    plot=o.plot,
    orm_cfg=p.orm_cfg,
    seed=p.seed,
    task=p.task,
    precision=p.precision,
    pair_data=p.pair_data,
)
