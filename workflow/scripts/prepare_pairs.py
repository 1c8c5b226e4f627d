from embrm.data.preferences import SPLITS, prepare_pairs
from embrm.multi_objective.pair_source import prepare_rating_pairs
from embrm.workflow.rule_io import run

o = snakemake.output
cfg = snakemake.params.cfg
outputs = dict(
    out_pairs={split: o[f"{split}_pairs"] for split in SPLITS},
    out_preferences={split: o[f"{split}_preferences"] for split in SPLITS},
    report=o.report,
)
if cfg["from_ratings"]:
    ratings = {split: snakemake.input[f"{split}_ratings"] for split in SPLITS}
    run(snakemake, prepare_rating_pairs, ratings=ratings, cfg=cfg, **outputs)
else:
    run(snakemake, prepare_pairs, cfg=cfg, **outputs)
