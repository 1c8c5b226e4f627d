from embrm.evaluate.pair_evaluation import evaluate_pairs
from embrm.workflow.rule_io import run

i, o, p = snakemake.input, snakemake.output, snakemake.params
run(
    snakemake,
    evaluate_pairs,
    ckpt=i.ckpt,
    embeddings=i.embeddings,
    preferences=i.preferences,
    pairs=i.pairs,
    baseline_scores=i.baseline_scores,
    results=o.results,
    test_scores=o.test_scores,
    reliability_plot=o.reliability_plot,
    margins_plot=o.margins_plot,
    eval_cfg=p.eval_cfg,
    precision=p.precision,
)
