from embrm.generation.embeddings import embed
from embrm.workflow.rule_io import run

p = snakemake.params
run(
    snakemake,
    embed,
    samples_file=snakemake.input.samples,
    out_embeddings=snakemake.output.embeddings,
    model_path=p.model,
    cfg=p.embedding,
    trust_remote_code=p.trust_remote_code,
    check_arrays={snakemake.output.embeddings: 3},
)
