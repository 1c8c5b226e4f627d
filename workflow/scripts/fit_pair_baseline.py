from embrm.evaluate.pair_evaluation import fit_baseline
from embrm.workflow.rule_io import run

i, o = snakemake.input, snakemake.output
run(
    snakemake,
    fit_baseline,
    train_embeddings=i.train_embeddings,
    train_preferences=i.train_preferences,
    test_embeddings=i.test_embeddings,
    test_preferences=i.test_preferences,
    test_scores=o.test_scores,
    summary_json=o.summary_json,
    seed=snakemake.params.seed,
)
