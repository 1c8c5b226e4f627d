"""Step 7 (isotonic calibration, distillation) and step 8 (validation of four variants)."""


localrules:
    calibrate_teacher,
    distill_student,
    calibrate_student,
    validate_variants,


rule calibrate_teacher:
    input:
        scores="{exp}/eval/test_scores.npy",
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
    conda:
        CPU_ENV
    params:
        # only the keys this step reads: a student hyperparameter must not refit the map
        split=lambda wc: cfg(wc)["distill"]["split"],
        cv_folds=lambda wc: cfg(wc)["distill"]["cv_folds"],
        seed=lambda wc: cfg(wc)["seed"],
    script:
        "../scripts/calibrate_teacher.py"


rule distill_student:
    input:
        embeddings=data_file("embeddings", "test"),
        rewards=data_file("rewards", "test"),
        split="{exp}/calibration/split.npz",
    output:
        ckpt="{exp}/distilled_rm_{task}_{objective}.ckpt",
        scores="{exp}/calibration/student_scores_{task}_{objective}.npy",
        stats="{exp}/calibration/student_stats_{task}_{objective}.json",
    log:
        "{exp}/logs/distill_student_{task}_{objective}.log",
    benchmark:
        "{exp}/benchmarks/distill_student_{task}_{objective}.tsv"
    conda:
        CPU_ENV
    threads: ALL_CORES
    params:
        distill=lambda wc: wcfg.check_student_name(cfg(wc), wc.task, wc.objective)[
            "distill"
        ],
        seed=lambda wc: cfg(wc)["seed"],
        chunk_prompts=lambda wc: cfg(wc)["evaluation"]["chunk_prompts"],
        precision=lambda wc: cfg(wc)["precision"],
    script:
        "../scripts/distill_student.py"


rule calibrate_student:
    input:
        scores=student_file("scores"),
        stats=student_file("stats"),
        embeddings=data_file("embeddings", "test"),
        rewards=data_file("rewards", "test"),
        split="{exp}/calibration/split.npz",
        teacher_report="{exp}/calibration/teacher_calibration.json",
    output:
        student_map="{exp}/isotonic_student_map.joblib",
        map_json="{exp}/isotonic_student_map.json",
        config="{exp}/distillation_config.json",
    log:
        "{exp}/logs/calibrate_student.log",
    benchmark:
        "{exp}/benchmarks/calibrate_student.tsv"
    conda:
        CPU_ENV
    params:
        distill=lambda wc: cfg(wc)["distill"],
        seed=lambda wc: cfg(wc)["seed"],
        precision=lambda wc: cfg(wc)["precision"],
    script:
        "../scripts/calibrate_student.py"


rule validate_variants:
    input:
        split="{exp}/calibration/split.npz",
        student_scores=student_file("scores"),
        embeddings=data_file("embeddings", "test"),
        rewards=data_file("rewards", "test"),
        teacher_map="{exp}/isotonic_teacher_map.joblib",
        student_map="{exp}/isotonic_student_map.joblib",
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
    conda:
        CPU_ENV
    script:
        "../scripts/validate_variants.py"
