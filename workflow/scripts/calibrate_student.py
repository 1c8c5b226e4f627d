from embrm.calibrate.isotonic import calibrate_student
from embrm.workflow.rule_io import run

i, o, p = snakemake.input, snakemake.output, snakemake.params
run(
    snakemake,
    calibrate_student,
    student_scores=i.student_scores,
    student_stats=i.student_stats,
    embeddings=i.embeddings,
    rewards=i.rewards,
    split=i.split,
    teacher_report=i.teacher_report,
    student_map=o.student_map,
    map_json=o.map_json,
    distillation_config=o.distillation_config,
    distill_cfg=p.distill_cfg,
    seed=p.seed,
)
