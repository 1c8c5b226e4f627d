from embrm.serve.bundle import build_gated_bundle
from embrm.workflow.rule_io import run

i, o, p = snakemake.input, snakemake.output, snakemake.params
run(
    snakemake,
    build_gated_bundle,
    tensors=i.tensors,
    settings=i.settings,
    train_embeddings=i.train_embeddings,
    bundle=o.bundle,
    embedding=p.embedding,
    embedder_path=p.embedder_path,
    run=p.run,
)
