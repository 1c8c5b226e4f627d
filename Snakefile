"""embrm: embedding-based reward-model research as one cached DAG.

Rules are wiring only; all logic lives in the `embrm` package (src/embrm).
"""

from snakemake.utils import min_version

from embrm.workflow import code_identity

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/orm.smk"
include: "workflow/rules/pairs.smk"
include: "workflow/rules/ratings.smk"
include: "workflow/rules/benchmarks.smk"
include: "workflow/rules/calibrate.smk"
include: "workflow/rules/serve.smk"
include: "workflow/rules/studies.smk"
include: "workflow/rules/active.smk"
include: "workflow/rules/report.smk"


# each script rule's code identity includes the package modules it imports
for _rule in workflow.rules:
    code_identity.attach(_rule)


rule all:
    default_target: True
    input:
        # the main run's last steps; the DAG brings in every step before them. Pair
        # data end at step 6: steps 7-8, best-of-N and the report figures read golden
        # rewards, which human labels are not (see pairs.smk)
        # rated responses end at the multi-objective heads' evaluation and bundle
        # (ratings.smk)
        (
            outputs_of(rules.evaluate_pairs, MAIN)
            if PAIR_DATA
            else (
                [
                    outputs_of(rules.evaluate_multi_objective, MAIN),
                    outputs_of(rules.multi_objective_model, MAIN),
                ]
                if RATING_DATA
                else [
                    outputs_of(rules.validate_variants, MAIN),
                    outputs_of(rules.report_figures, MAIN),
                ]
            )
        ),
        # the bundle embeds text, so it exists where the run embedded text itself
        (
            outputs_of(rules.reward_model, MAIN)
            if config["data"]["source"] == "generate"
            else []
        ),
        # the standard benchmarks of evaluation.benchmarks, scored with the ensemble
        benchmark_outputs(MAIN),
    localrule: True
