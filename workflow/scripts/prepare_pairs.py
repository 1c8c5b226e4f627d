from embrm.data.preferences import prepare_pairs
from embrm.workflow.rule_io import run

o = snakemake.output
run(
    snakemake,
    prepare_pairs,
    cfg=snakemake.params.cfg,
    out_pairs={split: o[f"{split}_pairs"] for split in ("train", "test")},
    out_preferences={split: o[f"{split}_preferences"] for split in ("train", "test")},
    report=o.report,
)
