from embrm.generation.embeddings import embed
from embrm.rule_io import run

p = snakemake.params
run(
    snakemake,
    embed,
    snakemake.input.samples,
    snakemake.output[0],
    p.model,
    p.embedding,
    trust_remote_code=p.trust_remote_code,
)
