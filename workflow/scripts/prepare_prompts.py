from embrm.data.prompts import prepare_prompts
from embrm.workflow.rule_io import run

p = snakemake.params
run(
    snakemake,
    prepare_prompts,
    cfg=p.prompts,
    split=snakemake.wildcards.split,
    out_path=snakemake.output.prompts,
    tokenizer_dir=p.tokenizer,
    trust_remote_code=p.trust_remote_code,
)
