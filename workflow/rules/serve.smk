"""Step 9: the reward-model bundle that RL trainers call (needs data.source: generate)."""


rule reward_model:
    input:
        ensemble=rules.train_orm.output.ckpt,
        student=student_file("ckpt"),
        student_stats=student_file("stats"),
        teacher_map_json=rules.calibrate_teacher.output.map_json,
        student_map_json=rules.calibrate_student.output.map_json,
        distillation_config=rules.calibrate_student.output.distillation_config,
        validation=rules.validate_variants.output.results,
        calibration_plot=rules.validate_variants.output.plot,
        # the held-out prompts every served head is measured on
        test_embeddings=data_file("embeddings", "test"),
        test_rewards=data_file("rewards", "test"),
        split=rules.calibrate_teacher.output.split,
        # a model the workflow builds is copied into the bundle
        embedder=lambda wc: (
            [bundle_embedder_path(wc)]
            if bundle_embedding(wc)["model"] == "tiny"
            else []
        ),
    output:
        bundle=directory("{exp}/reward_model"),
    log:
        "{exp}/logs/reward_model.log",
    benchmark:
        "{exp}/benchmarks/reward_model.tsv"
    localrule: True
    conda:
        CPU_ENV
    params:
        embedding=bundle_embedding,
        embedder_path=bundle_embedder_path,
        run=bundle_run,
    script:
        "../scripts/reward_model.py"
