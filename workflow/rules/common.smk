from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from embrm import workflow_config as wcfg
from embrm import data_layout, studies
from embrm.generation import checks as gen_checks
from embrm.generation import models as gen_models

SCHEMA = "../schemas/config.schema.yaml"
validate(config, SCHEMA)
wcfg.check_config(config)
gen_checks.check_generation(config)
POINT_CONFIGS = studies.all_point_configs(config)
for _exp, _point in POINT_CONFIGS.items():
    try:
        validate(_point, SCHEMA)
    except WorkflowError as exc:
        raise WorkflowError(f"study point {_exp}: {exc}") from None
# the data-side settings behind every data folder the main run and the studies use
DATA = data_layout.DataVariants(config, list(POINT_CONFIGS.values()))

MAIN = "results"
STUDY_INPUTS = ("eval_results.json", "validation_results.json")
CPU_ENV = "../../envs/cpu.yaml"
GPU_ENV = "../../envs/gpu.yaml"
# Snakemake exports OMP/MKL_NUM_THREADS=threads to every job (default 1):
# the torch-heavy rules ask for all cores, capped by --cores.
ALL_CORES = 1024


wildcard_constraints:
    exp=wcfg.EXP_PATTERN,
    task="[A-Za-z0-9_-]+",
    objective="bt|clf",
    split="train|test",
    policy="[^/]+",
    embedder="[^/]+",


def cfg(wildcards):
    """The effective config of one experiment folder (main run or study point)."""
    return wcfg.exp_config(config, wildcards.exp, POINT_CONFIGS)


def data_file(kind, split):
    """Input function: a canonical array of the experiment's data source."""
    return lambda wc: data_layout.data_path(cfg(wc), kind, split)


def student_file(kind):
    """Input function: the student artifact named after the experiment's task/objective."""
    ext = {"scores": "npy", "stats": "json"}[kind]

    def path(wc):
        c = cfg(wc)
        return f"{wc.exp}/calibration/student_{kind}_{c['task']}_{c['orm']['objective']}.{ext}"

    return path


def stage_model(role, wc):
    """The model name a generation stage uses for the data folder in ``wc``."""
    if role == "policy":
        return DATA.policy(wc.policy)
    if role == "embedder":
        return DATA.embedding(wc.embedder)["model"]
    return config["generation"]["golden"]["models"][config["task"]]["model"]


def model_input(role):
    """Input function: the locally built model folder a stage needs (none for hub ids)."""

    def folder(wc):
        name = stage_model(role, wc)
        return [gen_models.resolve(name, role)] if name in gen_models.BUILT else []

    return folder


def model_path(role):
    """Params function: where a stage loads its model from."""
    return lambda wc: gen_models.resolve(stage_model(role, wc), role)


def sft_deepspeed():
    """generation.sft.deepspeed, resolved so config/deepspeed_zero3.json works from any
    --directory."""
    return gen_models.resolve_file(
        config["generation"]["sft"]["deepspeed"], workflow.basedir
    )


def final_targets(exp):
    c = wcfg.exp_config(config, exp, POINT_CONFIGS)
    return [f"{exp}/{name}" for name in wcfg.final_artifacts(c)]
