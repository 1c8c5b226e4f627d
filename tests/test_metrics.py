import numpy as np
import pytest
from scipy.stats import rankdata, spearmanr

from embrm.evaluate.metrics import global_spearman, row_ranks


@pytest.mark.parametrize("ties", [False, True])
def test_row_ranks_match_scipy(ties):
    rng = np.random.default_rng(0)
    for _ in range(50):
        a = rng.integers(0, 4, (6, 11)).astype(float) if ties else rng.standard_normal((6, 11))
        assert np.array_equal(row_ranks(a), rankdata(a, axis=1))
        assert np.array_equal(row_ranks(a, method="min"), rankdata(a, axis=1, method="min"))
        b = rng.standard_normal((6, 11))
        assert global_spearman(a, b) == pytest.approx(spearmanr(a.ravel(), b.ravel()).statistic)
