"""Figures that only the report needs: reliability, margins, runtimes, the run's config."""


localrules:
    report_figures,


rule report_figures:
    input:
        scores="{exp}/eval/test_scores.npy",
        rewards=data_file("rewards", "test"),
        done="{exp}/validation_results.json",
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
    conda:
        CPU_ENV
    params:
        config=lambda wc: cfg(wc),
    script:
        "../scripts/report_figures.py"
