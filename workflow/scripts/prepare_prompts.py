from embrm.generation.prompts import prepare_prompts
from embrm.rule_io import run

run(
    snakemake,
    prepare_prompts,
    snakemake.params.prompts,
    snakemake.wildcards.split,
    snakemake.output[0],
    snakemake.params.tokenizer,
    trust_remote_code=snakemake.params.trust_remote_code,
)
