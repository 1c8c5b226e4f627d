from snakemake.utils import validate

from embrm import workflow_config as wcfg

validate(config, "../schemas/config.schema.yaml")
wcfg.check_config(config)

MAIN = "results"
CPU_ENV = "../../envs/cpu.yaml"


wildcard_constraints:
    exp=wcfg.EXP_PATTERN,
    task="[A-Za-z0-9_-]+",
    objective="bt|clf",
    split="train|test",


def cfg(wildcards):
    """The effective config of one experiment folder (main run or study point)."""
    return wcfg.exp_config(config, wildcards.exp)


def data_file(kind, split):
    """Input function: a canonical array of the experiment's data source."""
    return lambda wc: wcfg.data_path(cfg(wc), kind, split)


def final_targets(exp):
    c = wcfg.exp_config(config, exp)
    return [f"{exp}/{name}" for name in wcfg.final_artifacts(c)]
