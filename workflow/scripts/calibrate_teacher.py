from embrm.calibration import calibrate_teacher
from embrm.rule_io import run

o = snakemake.output
run(
    snakemake,
    calibrate_teacher,
    snakemake.input.scores,
    snakemake.input.embeddings,
    snakemake.input.rewards,
    [o.teacher_map, o.legacy_map],
    o.map_json,
    o.split,
    o.report,
    snakemake.params.split,
    snakemake.params.cv_folds,
    seed=snakemake.params.seed,
)
