from embrm.calibration import calibrate_student
from embrm.rule_io import run

i, o, p = snakemake.input, snakemake.output, snakemake.params
run(
    snakemake,
    calibrate_student,
    i.scores,
    i.embeddings,
    i.rewards,
    i.split,
    i.teacher_report,
    i.stats,
    o.student_map,
    o.map_json,
    o.config,
    p.distill,
    seed=p.seed,
    precision=p.precision,
)
