from embrm.evaluate.validation import validate
from embrm.workflow.rule_io import run

i, o = snakemake.input, snakemake.output
run(
    snakemake,
    validate,
    split=i.split,
    student_scores=i.student_scores,
    embeddings=i.embeddings,
    rewards=i.rewards,
    teacher_map=i.teacher_map,
    student_map=i.student_map,
    results=o.results,
    plot=o.plot,
)
