import numpy as np
import pytest
from scipy.stats import rankdata, spearmanr

from embrm.evaluate.metrics import global_spearman, row_ranks
from embrm.evaluate.report_figures import runtime_table


@pytest.mark.parametrize("ties", [False, True])
def test_row_ranks_match_scipy(ties):
    rng = np.random.default_rng(0)
    for _ in range(50):
        a = rng.integers(0, 4, (6, 11)).astype(float) if ties else rng.standard_normal((6, 11))
        assert np.array_equal(row_ranks(a), rankdata(a, axis=1))
        assert np.array_equal(row_ranks(a, method="min"), rankdata(a, axis=1, method="min"))
        b = rng.standard_normal((6, 11))
        assert global_spearman(a, b) == pytest.approx(spearmanr(a.ravel(), b.ravel()).statistic)


def test_runtime_table_reads_the_given_benchmarks_only(tmp_path):
    """Each row is a declared benchmark file, named by its path below the folder; other
    files there (a study's, a stale one) are not read."""
    bench = tmp_path / "benchmarks"
    header = "s\th:m:s\tmax_rss\n"
    files = {"train_orm.tsv": "2.5\t0:00:02\t120.0\n", "gen/sft.tsv": "7.0\t0:00:07\tNA\n"}
    for name, row in {**files, "stale.tsv": "9.0\t0:00:09\t1.0\n"}.items():
        (bench / name).parent.mkdir(parents=True, exist_ok=True)
        (bench / name).write_text(header + row)
    csv = tmp_path / "runtimes.csv"
    runtime_table(
        benchmarks=[str(bench / n) for n in files],
        benchmark_dir=bench,
        runtimes_csv=csv,
        runtimes_plot=tmp_path / "runtimes.png",
    )
    assert csv.read_text().splitlines() == [
        "job,wall_s,max_rss_mb",
        "gen/sft,7.0,nan",
        "train_orm,2.5,120.0",
    ]
