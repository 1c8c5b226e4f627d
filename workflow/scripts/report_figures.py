from embrm.evaluate import report_figures as rf
from embrm.workflow.rule_io import run

i, o, p = snakemake.input, snakemake.output, snakemake.params


def make():
    rf.plot_reliability_and_margins(
        test_scores=i.test_scores,
        rewards=i.rewards,
        reliability_plot=o.reliability,
        margins_plot=o.margins,
    )
    rf.runtime_table(
        benchmarks=i.benchmarks,
        benchmark_dir=p.benchmark_dir,
        runtimes_csv=o.runtimes_csv,
        runtimes_plot=o.runtimes,
    )
    rf.write_config(p.config, o.config)


run(snakemake, make)
