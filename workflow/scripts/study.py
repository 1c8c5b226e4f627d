from embrm.workflow.rule_io import run
from embrm.workflow.study_table import aggregate

o, p = snakemake.output, snakemake.params
run(
    snakemake,
    aggregate,
    study=p.study,
    points=p.points,
    table=o.table,
    markdown=o.markdown,
    summary=o.summary,
    plot=o.plot,
    pair_data=p.pair_data,
)
