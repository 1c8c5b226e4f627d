from embrm.rule_io import run
from embrm.study_table import aggregate

o = snakemake.output
run(
    snakemake,
    aggregate,
    snakemake.params.study,
    snakemake.params.points,
    o.table,
    o.markdown,
    o.summary,
    o.plot,
)
