"""Studies: one target per study (`snakemake study_<name>`) and `all_studies`."""

STUDIES = studies.study_folders(config)
# a point's artifact linked from outside results/ would count as a finished step
studies.check_point_links(POINT_CONFIGS)
# what a study table reads from each point: step-6 and step-8 metrics (pair data:
# step 6's pair metrics; data.source is shared by every point)
STUDY_INPUTS = (
    (rules.evaluate_pairs.output.results,)
    if PAIR_DATA
    else (rules.evaluate_orm.output.results, rules.validate_variants.output.results)
)


for _study, _points in STUDIES.items():

    rule:
        name:
            f"study_{_study}"
        input:
            [f.format(exp=exp) for exp in _points for f in STUDY_INPUTS],
            # each point's standard benchmarks: the table's benchmark_<name> columns
            study_benchmarks(_points),
        output:
            table=f"{studies.STUDY_ROOT}/{_study}/table.csv",
            markdown=f"{studies.STUDY_ROOT}/{_study}/table.md",
            summary=f"{studies.STUDY_ROOT}/{_study}/summary.md",
            plot=report(
                f"{studies.STUDY_ROOT}/{_study}/study_plot.png",
                caption="../report/study_plot.rst",
                category="Studies",
                subcategory=_study,
            ),
        log:
            f"{studies.STUDY_ROOT}/{_study}/aggregate.log",
        benchmark:
            f"{studies.STUDY_ROOT}/{_study}/aggregate.tsv"
        localrule: True
        conda:
            CPU_ENV
        params:
            study=_study,
            points=_points,
            pair_data=PAIR_DATA,
        script:
            "../scripts/study.py"


rule all_studies:
    input:
        [getattr(rules, f"study_{s}").output.summary for s in STUDIES],
    localrule: True
