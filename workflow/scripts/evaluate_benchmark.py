from embrm.evaluate.benchmarks.steps import evaluate_benchmark
from embrm.workflow.rule_io import run

i, o, p = snakemake.input, snakemake.output, snakemake.params
run(
    snakemake,
    evaluate_benchmark,
    ckpt=i.ckpt,
    embeddings=i.embeddings,
    pairs=i.pairs,
    results=o.results,
    table_md=o.table,
    figure=o.figure,
    name=snakemake.wildcards.benchmark,
    layout=p.layout,
    lambdas=p.eval_cfg.get("conservative_lambdas", []),
    seed=p.seed,
    chunk_prompts=p.eval_cfg["chunk_prompts"],
    precision=p.precision,
)
