from embrm.data.importer import convert
from embrm.workflow.rule_io import run

release_embeddings, release_rewards = snakemake.input.release
p = snakemake.params.release
run(
    snakemake,
    convert,
    release_embeddings=release_embeddings,
    release_rewards=release_rewards,
    embeddings=snakemake.output.embeddings,
    rewards=snakemake.output.rewards,
    max_prompts=p["max_prompts"],
    chunk=p["chunk_prompts"],
)
