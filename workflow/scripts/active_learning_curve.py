from embrm.active.curve import learning_curve
from embrm.workflow.rule_io import run

o, p = snakemake.output, snakemake.params
run(
    snakemake,
    learning_curve,
    points=p.points,
    table=o.table,
    markdown=o.markdown,
    plot=o.plot,
)
