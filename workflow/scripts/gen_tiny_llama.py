from embrm.generation.tiny_models import build_llama
from embrm.rule_io import run

p = snakemake.params
run(snakemake, build_llama, snakemake.output.policy, seed=p.seed, **p.tiny)
