from embrm.generation.golden import annotate
from embrm.workflow.rule_io import run

p = snakemake.params
run(
    snakemake,
    annotate,
    samples_file=snakemake.input.samples,
    out_rewards=snakemake.output.rewards,
    model_path=p.model,
    cfg=p.golden,
    trust_remote_code=p.trust_remote_code,
    check_arrays={snakemake.output.rewards: 2},
)
