from embrm.evaluate.benchmarks.steps import prepare_benchmark
from embrm.workflow.rule_io import run

o, p = snakemake.output, snakemake.params
run(
    snakemake,
    prepare_benchmark,
    source=p.settings["source"],
    layout=p.settings["layout"],
    split=p.settings.get("split"),
    pairs=o.pairs,
    report=o.report,
)
