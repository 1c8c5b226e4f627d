from embrm.evaluate.evaluation import evaluate
from embrm.workflow.rule_io import run

i, o, p = snakemake.input, snakemake.output, snakemake.params
run(
    snakemake,
    evaluate,
    ckpt=i.ckpt,
    embeddings=i.embeddings,
    rewards=i.rewards,
    results=o.results,
    test_scores=o.test_scores,
    plot=o.plot,
    eval_cfg=p.eval_cfg,
    seed=p.seed,
    precision=p.precision,
    samples=i.get("samples") or None,
)
