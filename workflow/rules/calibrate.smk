"""Step 7 (isotonic calibration, distillation) and step 8 (validation of four variants)."""


rule calibrate_teacher:
    input:
        test_scores=rules.evaluate_orm.output.test_scores,
        embeddings=data_file("embeddings", "test"),
        rewards=data_file("rewards", "test"),
    output:
        teacher_map="{exp}/isotonic_teacher_map.joblib",
        legacy_map="{exp}/isotonic_map.joblib",
        map_json="{exp}/isotonic_teacher_map.json",
        split="{exp}/calibration/split.npz",
        report="{exp}/calibration/teacher_calibration.json",
    log:
        "{exp}/logs/calibrate_teacher.log",
    benchmark:
        "{exp}/benchmarks/calibrate_teacher.tsv"
    group:
        CPU_GROUP
    localrule: not CPU_SUBMIT
    conda:
        CPU_ENV
    resources:
        **cpu_resources("calibrate_teacher"),
    params:
        # only the keys this step reads: a student hyperparameter must not refit the map
        split_fractions=exp_value("distill", "split"),
        cv_folds=exp_value("distill", "cv_folds"),
        seed=exp_value("seed"),
    script:
        "../scripts/calibrate_teacher.py"


rule distill_student:
    input:
        embeddings=data_file("embeddings", "test"),
        rewards=data_file("rewards", "test"),
        split=rules.calibrate_teacher.output.split,
    output:
        ckpt="{exp}/distilled_rm_{task}_{objective}.ckpt",
        scores="{exp}/calibration/student_scores_{task}_{objective}.npy",
        stats="{exp}/calibration/student_stats_{task}_{objective}.json",
    log:
        "{exp}/logs/distill_student_{task}_{objective}.log",
    benchmark:
        "{exp}/benchmarks/distill_student_{task}_{objective}.tsv"
    group:
        CPU_GROUP
    localrule: not CPU_SUBMIT
    conda:
        CPU_ENV
    threads: cpu_threads()
    resources:
        **cpu_resources("distill_student"),
    params:
        distill_cfg=lambda wc: experiments.check_student_name(
            cfg(wc), wc.task, wc.objective
        )["distill"],
        seed=exp_value("seed"),
        chunk_prompts=exp_value("evaluation", "chunk_prompts"),
        precision=exp_value("precision"),
    script:
        "../scripts/distill_student.py"


rule calibrate_student:
    input:
        student_scores=student_file("scores"),
        student_stats=student_file("stats"),
        embeddings=data_file("embeddings", "test"),
        rewards=data_file("rewards", "test"),
        split=rules.calibrate_teacher.output.split,
        teacher_report=rules.calibrate_teacher.output.report,
    output:
        student_map="{exp}/isotonic_student_map.joblib",
        map_json="{exp}/isotonic_student_map.json",
        distillation_config="{exp}/distillation_config.json",
    log:
        "{exp}/logs/calibrate_student.log",
    benchmark:
        "{exp}/benchmarks/calibrate_student.tsv"
    group:
        CPU_GROUP
    localrule: not CPU_SUBMIT
    conda:
        CPU_ENV
    resources:
        **cpu_resources("calibrate_student"),
    params:
        distill_cfg=exp_value("distill"),
        seed=exp_value("seed"),
    script:
        "../scripts/calibrate_student.py"


rule validate_variants:
    input:
        split=rules.calibrate_teacher.output.split,
        student_scores=student_file("scores"),
        embeddings=data_file("embeddings", "test"),
        rewards=data_file("rewards", "test"),
        # the JSON twins: the workflow never unpickles a .joblib map
        teacher_map_json=rules.calibrate_teacher.output.map_json,
        student_map_json=rules.calibrate_student.output.map_json,
    output:
        results="{exp}/validation_results.json",
        plot=report(
            "{exp}/calibration_plot.png",
            caption="../report/calibration_plot.rst",
            category="Calibration",
        ),
    log:
        "{exp}/logs/validate_variants.log",
    benchmark:
        "{exp}/benchmarks/validate_variants.tsv"
    group:
        CPU_GROUP
    localrule: not CPU_SUBMIT
    conda:
        CPU_ENV
    resources:
        **cpu_resources("validate_variants"),
    script:
        "../scripts/validate_variants.py"
