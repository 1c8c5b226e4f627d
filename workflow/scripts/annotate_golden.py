from embrm.generation.golden import annotate
from embrm.rule_io import run

p = snakemake.params
run(
    snakemake,
    annotate,
    snakemake.input.samples,
    snakemake.output[0],
    p.model,
    p.golden,
    trust_remote_code=p.trust_remote_code,
)
