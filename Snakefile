"""embrm: embedding-based reward-model research as one cached DAG.

Rules are wiring only; all logic lives in the `embrm` package (src/embrm).
"""


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/orm.smk"
include: "workflow/rules/calibrate.smk"
include: "workflow/rules/studies.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        final_targets(MAIN),
