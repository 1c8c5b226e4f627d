from embrm.evaluate.strength import measure_strength
from embrm.rm.options import OrmSettings
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
    orm=OrmSettings.of(p.orm),
    seed=p.seed,
    task=p.task,
    precision=p.precision,
    pair_data=p.pair_data,
)
