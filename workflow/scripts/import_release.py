from embrm.importer import convert
from embrm.rule_io import run

p = snakemake.params.release
run(
    snakemake,
    convert,
    *snakemake.input.release,
    snakemake.output.embeddings,
    snakemake.output.rewards,
    max_prompts=p["max_prompts"],
    chunk=p["chunk_prompts"],
)
