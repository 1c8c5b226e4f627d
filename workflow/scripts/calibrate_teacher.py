from embrm.calibrate.isotonic import calibrate_teacher
from embrm.workflow.rule_io import run

i, o, p = snakemake.input, snakemake.output, snakemake.params
run(
    snakemake,
    calibrate_teacher,
    test_scores=i.test_scores,
    embeddings=i.embeddings,
    rewards=i.rewards,
    teacher_map=o.teacher_map,
    legacy_map=o.legacy_map,
    map_json=o.map_json,
    split=o.split,
    report=o.report,
    split_fractions=p.split_fractions,
    cv_folds=p.cv_folds,
    seed=p.seed,
)
