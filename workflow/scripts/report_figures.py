from pathlib import Path

from embrm import report_figures as rf
from embrm.rule_io import run

i, o = snakemake.input, snakemake.output


def make():
    rf.plot_reliability_and_margins(i.scores, i.rewards, o.reliability, o.margins)
    rf.runtime_table(Path(i.done).parent / "benchmarks", o.runtimes_csv, o.runtimes)
    rf.write_config(snakemake.params.config, o.config)


run(snakemake, make)
