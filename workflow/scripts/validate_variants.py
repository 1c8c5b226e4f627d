from embrm.rule_io import run
from embrm.validation import validate

i, o = snakemake.input, snakemake.output
run(
    snakemake,
    validate,
    i.split,
    i.student_scores,
    i.embeddings,
    i.rewards,
    i.teacher_map,
    i.student_map,
    o.results,
    o.plot,
)
