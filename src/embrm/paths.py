"""The results folder: the one place that names it.

The main run writes to ``results/``; each study point to
``results/studies/<study>/<point>``; canonical arrays to ``results/data/``
(:mod:`embrm.data.layout`). Files inside an experiment folder are named by the rules'
``output:`` and nowhere else.
"""

RESULTS = "results"
STUDY_ROOT = f"{RESULTS}/studies"
# an experiment folder: the main run or one study point
EXP_PATTERN = rf"{RESULTS}(/studies/[^/]+/[^/]+)?"
