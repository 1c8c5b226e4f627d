from embrm.data import layout as data_layout
from embrm.data.importer import release_files
from embrm.generation import models as gen_models
from embrm.workflow import experiments, studies
from embrm.workflow.config import check_config
from embrm.workflow.paths import EXP_PATTERN, RESULTS
from embrm.workflow.schema import check_schema

SCHEMA = f"{workflow.basedir}/workflow/schemas/config.schema.yaml"
check_schema(config, SCHEMA)
check_config(config)
POINT_CONFIGS = studies.all_point_configs(config)
for _exp, _point in POINT_CONFIGS.items():
    check_schema(_point, SCHEMA, where=f"study point {_exp}: config")
# the data-side settings behind every data folder the main run and the studies use
DATA = data_layout.DataVariants(config, list(POINT_CONFIGS.values()))

# the main run's experiment folder; study points live under it (embrm.workflow.paths)
MAIN = RESULTS
CPU_ENV = "../../envs/cpu.yaml"
GPU_ENV = "../../envs/gpu.yaml"


wildcard_constraints:
    exp=EXP_PATTERN,
    task="[A-Za-z0-9_-]+",
    objective="bt|clf",
    split="train|test",
    policy="[^/]+",
    embedder="[^/]+",


def cfg(wildcards):
    """The effective config of one experiment folder (main run or study point)."""
    return experiments.exp_config(config, wildcards.exp, POINT_CONFIGS)


def data_file(kind, split):
    """Input function: a canonical array of the experiment's data source."""
    return lambda wc: data_layout.data_path(cfg(wc), kind, split)


def student_file(kind):
    """Input function: distill_student's output ``kind`` for the experiment's task and
    objective (the rule's `output:` is the only place that names the student's files).
    """

    def path(wc):
        c = cfg(wc)
        pattern = getattr(rules.distill_student.output, kind)
        return pattern.format(
            exp=wc.exp, task=c["task"], objective=c["orm"]["objective"]
        )

    return path


def outputs_of(rule, exp):
    """Every output of a step 5-8 rule for one experiment folder."""
    return [path.format(exp=exp) for path in rule.output]


def stage_model(role, wc):
    """The model name a generation stage uses for the data folder in ``wc``."""
    if role == "policy":
        return DATA.policy(wc.policy)
    if role == "embedder":
        return DATA.embedding(wc.embedder)["model"]
    return config["generation"]["golden"]["models"][config["task"]]


def model_input(role):
    """Input function: the locally built model folder a stage needs (none for hub ids)."""

    def folder(wc):
        name = stage_model(role, wc)
        return [gen_models.resolve(name, role)] if name == "tiny" else []

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


# Resources of the rules that run on a cluster's GPU nodes (those not in `localrules`).
GPU_RES_KEYS = ("partition", "account", "gpus", "cpus_per_gpu", "mem_mb", "runtime")


def gpu_res(key):
    """A GPU rule's resource from config["cluster"]["gpu"][key], for a `resources:` directive.

    Maps to the SLURM plugin's resources: partition -> slurm_partition (sbatch -p),
    account -> slurm_account (-A; null leaves it unset), gpus -> gpu (--gpus),
    cpus_per_gpu (--cpus-per-gpu), mem_mb (--mem), runtime (-t, minutes). mem_mb and
    runtime grow with the attempt: a job retried after a timeout or OOM asks for more.
    Local runs accept these resources and constrain nothing by them.
    """
    if key not in GPU_RES_KEYS:
        raise ValueError(f"gpu_res: unknown key {key!r}; use one of {GPU_RES_KEYS}")
    try:
        value = config["cluster"]["gpu"].get(key)
    except (KeyError, AttributeError, TypeError):
        raise ValueError("config key cluster.gpu is missing (config.yaml)") from None
    if key in ("mem_mb", "runtime"):
        return lambda wildcards, attempt: value * attempt
    return value
