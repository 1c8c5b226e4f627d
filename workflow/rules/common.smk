import os
import sys

from snakemake_interface_executor_plugins.settings import DeploymentMethod

from embrm.data import layout as data_layout
from embrm.data import preferences as data_preferences
from embrm.data.importer import release_files
from embrm.generation import checks as gen_checks
from embrm.generation import models as gen_models
from embrm.generation import sft_data as gen_sft_data
from embrm.paths import EXP_PATTERN, RESULTS
from embrm.resources import gpu as gpu_requests
from embrm.resources.cpu import group_id
from embrm.resources.cpu import rule_resources as cpu_rule_resources
from embrm.resources.gpu import rule_resource, rule_resources
from embrm.rm.options import OrmSettings
from embrm.serve import model_card
from embrm.workflow import experiments, studies
from embrm.workflow.config import (
    check_active_training,
    check_config,
    retype_cli_config,
)
from embrm.workflow.schema import check_schema

SCHEMA = f"{workflow.basedir}/workflow/schemas/config.schema.yaml"
# nested --config values arrive as strings (`--config distill='{distill_epochs: 5}'`)
retype_cli_config(config, workflow.config_settings.config)
check_schema(config, SCHEMA)
check_config(config)
check_active_training(config)
gen_checks.check_generation(config, workflow.basedir)
# The env files install the package from paths relative to envs/, which do not resolve
# in the copy --sdm conda makes; jobs run the environment snakemake runs in instead.
if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
    raise WorkflowError(
        "--sdm conda (software-deployment-method: conda) is not supported: create the "
        "environment once (conda env create -f envs/gpu.yaml, on storage the nodes "
        "share), activate it and run snakemake without --sdm conda; see docs/cluster.md"
    )
POINT_CONFIGS = studies.all_point_configs(config)
for _exp, _point in POINT_CONFIGS.items():
    check_schema(_point, SCHEMA, where=f"study point {_exp}: config")
# the data-side settings behind every data folder the main run and the studies use
DATA_VARIANTS = data_layout.DataVariants(config, list(POINT_CONFIGS.values()))
# human preference pairs end at step 6 (no golden reward for steps 7-8)
PAIR_DATA = config["data"]["source"] == "pairs"
# rated responses train the multi-objective heads only (ratings.smk)
RATING_DATA = config["data"]["source"] == "ratings"

# the main run's experiment folder; study points live under it (embrm.paths)
MAIN = RESULTS
CPU_ENV = "../../envs/cpu.yaml"
GPU_ENV = "../../envs/gpu.yaml"
# The torch-heavy CPU rules ask for every core; Snakemake caps a job's threads at
# --cores, or at --local-cores for local jobs under a cluster executor. Not
# `workflow.cores`: a cluster run has no --cores, and reading it there is an error.
ALL_CORES = 1024
# Steps 5-8 run on the submit host (`localrule: not CPU_SUBMIT`), or with
# cluster.cpu.submit as one SLURM job per experiment folder (`group: CPU_GROUP`).
CPU_SUBMIT = config["cluster"]["cpu"]["submit"]


wildcard_constraints:
    exp=EXP_PATTERN,
    task="[A-Za-z0-9_-]+",
    objective="bt|clf",
    split="train|test",
    policy="[^/]+",
    embedder="[^/]+",
    dataset="[^/]+",
    benchmark="[A-Za-z0-9_-]+",
    tag="[^/]+",
    shard="[0-9]+",


def cfg(wildcards):
    """The effective config of one experiment folder (main run or study point)."""
    return experiments.exp_config(config, wildcards.exp, POINT_CONFIGS)


def exp_value(*keys):
    """Params function: the experiment folder's config value at ``keys`` (``"orm"``, or
    ``"distill", "split"``)."""

    def value(wildcards):
        node = cfg(wildcards)
        for key in keys:
            node = node[key]
        return node

    return value


def orm_settings(wildcards):
    """The experiment folder's typed `orm` section (embrm.rm.options.OrmSettings)."""
    return OrmSettings.of(cfg(wildcards)["orm"])


def data_file(kind, split):
    """Input function: a canonical array of the experiment's data source."""
    return lambda wc: data_layout.data_path(cfg(wc), kind, split)


def label_file(split):
    """Input function: what labels the experiment's pairs: golden rewards (N, K), or
    the human preferences (N, 2) of pair data. Rated responses have neither: asking
    for rewards makes data_path refuse, saying what runs on them."""
    return lambda wc: data_layout.data_path(
        cfg(wc), data_layout.LABELS.get(cfg(wc)["data"]["source"], "rewards"), split
    )


def given_margins(wc):
    """Input function: the train pairs file whose margin fields the margin loss reads
    (orm.margin_source: given), else nothing."""
    if not (pair_data(wc) and orm_settings(wc).given_margin_source):
        return []
    return data_layout.data_path(cfg(wc), "pairs", "train")


def pair_data(wc):
    """Whether the experiment learns from human preference pairs (data.source: pairs)."""
    return cfg(wc)["data"]["source"] == "pairs"


def test_samples(wc):
    """Input function: the test split's response texts where they exist (generated
    data), for step 6's length bias; none for the other sources."""
    c = cfg(wc)
    if c["data"]["source"] != "generate":
        return []
    return data_layout.data_path(c, "samples", "test")


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


# the experiment's steps 5-8 whose `benchmark:` files the runtime table reads
REPORT_TIMED = ("train_orm", "evaluate_orm", "calibrate_teacher", "distill_student")
REPORT_TIMED += ("calibrate_student", "validate_variants")


def report_benchmarks(wc):
    """Input function: the benchmark files of the experiment's steps 5-8 (with the
    first ensemble's where a remedy reads it), each named once, by its rule."""
    c = cfg(wc)
    timed = [*REPORT_TIMED]
    if orm_settings(wc).needs_strength:
        timed.append("preference_strength")
    return [
        getattr(rules, name).benchmark.format(
            exp=wc.exp, task=c["task"], objective=c["orm"]["objective"]
        )
        for name in timed
    ]


def outputs_of(rule, exp):
    """Every output of a step 5-8 rule for one experiment folder."""
    return [path.format(exp=exp) for path in rule.output]


def stage_model(role, wc):
    """The model name a generation stage uses for the data folder in ``wc``."""
    if role == "policy":
        return DATA_VARIANTS.policy(wc.policy)
    if role == "embedder":
        return DATA_VARIANTS.embedding(wc.embedder)["model"]
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


def sft_data_settings():
    """generation.sft.data with its defaults, {task} filled in and a local file resolved
    against the working directory, else the repository (None: the prompts' replies)."""
    return gen_sft_data.data_settings(
        config["generation"]["sft"]["data"], config["task"], workflow.basedir
    )


def sft_data_file():
    """The local file of the SFT demonstrations, an input of sft (none for a hub id)."""
    path = gen_sft_data.local_source(sft_data_settings())
    return str(path) if path else None


def interpreter(wildcards, input):
    """The GPU rules' `python` param: the interpreter running snakemake. A param derived
    from the input (by its signature), so Snakemake leaves it out of its params trigger:
    another path to the same environment reruns nothing."""
    return sys.executable


def gen_entry(stage):
    """A GPU rule's shell command: the entry runs ``stage`` (named in the command, so
    the rule's code identity follows the entry's table to the stage's module)."""
    return (
        f"{{params.python:q}} -m embrm.generation.entry {stage} {{params.job:q}} "
        "--paths {params.paths:q} --gpus {resources.gpu} "
        "--settings {resources.run_settings:q} > {log:q} 2>&1"
    )


def sft_settings():
    """generation.sft as the SFT job reads it: the DeepSpeed file and the demonstrations
    resolved (embrm.generation.sft_data), without the settings that change no output."""
    return {
        **gpu_requests.output_settings(config, "sft"),
        "deepspeed": sft_deepspeed(),
        "data": sft_data_settings(),
    }


def merged_model_needed():
    """Only the hf sampler reads a merged SFT model; vLLM loads the adapter itself."""
    return config["generation"]["sampling"]["backend"] == "hf"


def gpu_threads(stage):
    """A GPU rule's `threads:`: every CPU its job asks for (cluster.gpu.<stage>)."""
    return rule_resource(config, stage, "threads")


def bundle_embedding(wc):
    """The step-4 settings behind the experiment's embeddings: the bundle embeds new
    text exactly as the training text was embedded."""
    c = cfg(wc)
    if c["data"]["source"] not in ("generate", "ratings"):
        raise WorkflowError(
            f"{wc.exp}: a bundle needs an embedder for text, so data.source must be "
            f"generate (or ratings, for the multi-objective bundle; is "
            f"{c['data']['source']})"
        )
    return DATA_VARIANTS.embedding(data_layout.embedder_tag(c))


def bundle_embedder_path(wc):
    return gen_models.resolve(bundle_embedding(wc)["model"], "embedder")


def bundle_run(wc):
    """Task, objective and the data's description, for the model card."""
    return model_card.run_description(cfg(wc))


def ratings_run(wc):
    """Task and the rated responses' description, for the bundle's config."""
    return model_card.ratings_description(cfg(wc))


def gpu_resources(stage):
    """A GPU rule's `resources:` (cluster.gpu.<stage>, see embrm.resources.gpu):
    partition -> slurm_partition (sbatch -p), account -> slurm_account (-A), nodes=1
    (--nodes), gpus -> gpu (--gpus; a local run counts it against --resources gpu=N),
    cpus_per_gpu (--cpus-per-gpu), mem_mb (--mem: gpus x mem_mb_per_gpu) and runtime
    (-t: start-up plus the job's data size over its throughput), which a retry grows up
    to cluster.gpu.max_mem_mb / max_runtime; run_settings: what the job reads that
    changes no output.
    """
    return rule_resources(config, stage)


def cpu_threads():
    """A step 5-8 rule's `threads:`: every core of the submit host (capped by
    --cores/--local-cores), or the cores of its SLURM job (cluster.cpu.cpus)."""
    return config["cluster"]["cpu"]["cpus"] if CPU_SUBMIT else ALL_CORES


def cpu_resources(step):
    """A step 5-8 rule's `resources:` under cluster.cpu.submit (none otherwise):
    partition, account, mem_mb and runtime sized from the experiment's data and knobs
    and growing with the attempt, and disk_mb (embrm.resources.cpu)."""
    if not CPU_SUBMIT:
        return {}
    return cpu_rule_resources(cfg, config, step, 1 + len(POINT_CONFIGS))


def point_group(wildcards):
    """The group of an experiment folder's steps 5-8: one SLURM job per folder."""
    return group_id(wildcards.exp)


# a grouped rule is never local in Snakemake, so the group exists only when submitting
CPU_GROUP = point_group if CPU_SUBMIT else None


def resolved_source(settings, section, what):
    """A data section whose local source is made relative to the working directory, else
    to the repository (so config/pairs_hh_harmless.yaml works with any --directory)."""
    source = gen_models.resolve_file(settings["source"], workflow.basedir)
    if not os.path.exists(source):
        data_preferences.check_source(
            settings["source"], section, what
        )  # a hub id, or an error
        return settings
    return {**settings, "source": source}


def pairs_settings(wc):
    """data.pairs of the folder, its local source resolved (with from_ratings, the pairs
    come from data.ratings, under its "ratings" key, and the source is not read)."""
    pairs = DATA_VARIANTS.pairs(wc.dataset)
    if pairs["from_ratings"]:
        return pairs
    return resolved_source(pairs, "data.pairs", "preference")


def ratings_settings(wc):
    """data.ratings of the folder, its local source resolved."""
    return resolved_source(DATA_VARIANTS.ratings(wc.dataset), "data.ratings", "ratings")


def local_source(settings):
    """Input function: the local file a data section's records come from (none for a hub
    dataset)."""

    def files(wc):
        source = settings(wc)["source"]
        return [source] if os.path.exists(source) else []

    return files


def pairs_source(wc):
    """Input function (unpacked): what prepare_pairs reads: the local pairs file (none for
    a hub dataset), or with data.pairs.from_ratings each split's prepared rated responses.
    """
    pairs = pairs_settings(wc)
    if not pairs["from_ratings"]:
        return {"source": local_source(pairs_settings)(wc)}
    return {
        f"{split}_ratings": getattr(
            rules.prepare_ratings.output, f"{split}_ratings"
        ).format(dataset=pairs["ratings"]["name"])
        for split in ("train", "test")
    }


def pairs_file(wc):
    """The pairs of one split, as step 4 reads samples: prompt and two responses."""
    return getattr(rules.prepare_pairs.output, f"{wc.split}_pairs").format(
        dataset=wc.dataset
    )


def ratings_file(wc):
    """The rated responses of one split, as step 4 reads samples: the prompt and two
    texts, the prompt alone ("") and the response."""
    return getattr(rules.prepare_ratings.output, f"{wc.split}_ratings").format(
        dataset=wc.dataset
    )


def benchmark_settings(wc):
    """evaluation.benchmarks.<name>, its local source resolved."""
    section = f"evaluation.benchmarks.{wc.benchmark}"
    return resolved_source(DATA_VARIANTS.benchmark(wc.benchmark), section, "benchmark")


def benchmark_outputs(exp):
    """Every benchmark output of one experiment folder."""
    names = experiments.exp_config(config, exp, POINT_CONFIGS)["evaluation"][
        "benchmarks"
    ]
    return [
        path.format(exp=exp, benchmark=name)
        for name in names
        for path in rules.evaluate_benchmark.output
    ]


def study_benchmarks(points):
    """Input function: the benchmark outputs of a study's points, looked up only when the
    study is asked for (a study whose keys its data source ignores is refused then)."""
    return lambda wc: [path for exp in points for path in benchmark_outputs(exp)]
