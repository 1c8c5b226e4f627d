"""Figures that only the report needs: reliability, margins, runtimes, the run's config."""


rule report_figures:
    input:
        test_scores=rules.evaluate_orm.output.test_scores,
        rewards=data_file("rewards", "test"),
        benchmarks=report_benchmarks,
    output:
        reliability=report(
            "{exp}/report/reliability.png",
            caption="../report/reliability.rst",
            category="Evaluation",
        ),
        margins=report(
            "{exp}/report/margins.png",
            caption="../report/margins.rst",
            category="Evaluation",
        ),
        runtimes=report(
            "{exp}/report/runtimes.png",
            caption="../report/runtimes.rst",
            category="Run",
        ),
        runtimes_csv="{exp}/report/runtimes.csv",
        config=report(
            "{exp}/report/config.yaml", caption="../report/config.rst", category="Run"
        ),
    log:
        "{exp}/logs/report_figures.log",
    benchmark:
        "{exp}/benchmarks/report_figures.tsv"
    localrule: True
    conda:
        CPU_ENV
    params:
        config=cfg,
        benchmark_dir=lambda wc: f"{wc.exp}/benchmarks",
    script:
        "../scripts/report_figures.py"
