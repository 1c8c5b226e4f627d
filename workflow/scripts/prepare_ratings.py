from embrm.data.ratings import prepare_ratings
from embrm.workflow.rule_io import run

o = snakemake.output
run(
    snakemake,
    prepare_ratings,
    cfg=snakemake.params.cfg,
    out_ratings={split: o[f"{split}_ratings"] for split in ("train", "test")},
    out_attributes={split: o[f"{split}_attributes"] for split in ("train", "test")},
    report=o.report,
)
