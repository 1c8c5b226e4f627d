from embrm.serve.bundle import build_bundle
from embrm.workflow.rule_io import run

i, o, p = snakemake.input, snakemake.output, snakemake.params
run(
    snakemake,
    build_bundle,
    ensemble=i.ensemble,
    student=i.student,
    student_stats=i.student_stats,
    teacher_map_json=i.teacher_map_json,
    student_map_json=i.student_map_json,
    distillation_config=i.distillation_config,
    validation=i.validation,
    calibration_plot=i.calibration_plot,
    test_embeddings=i.test_embeddings,
    test_rewards=i.test_rewards,
    split=i.split,
    bundle=o.bundle,
    embedding=p.embedding,
    embedder_path=p.embedder_path,
    run=p.run,
)
