"""Summary statistics: the Wilson interval of a success rate."""

import math

import pytest

from controlkit.core.stats import proportion_ci95


def test_wilson_interval_stays_in_0_1_and_is_not_empty_at_the_ends():
    lo, hi = proportion_ci95(0, 5)
    assert lo == 0.0 and hi == pytest.approx(0.4345, abs=1e-4)  # the Wilson bound for 0 / 5
    lo, hi = proportion_ci95(5, 5)
    assert lo == pytest.approx(0.5655, abs=1e-4) and hi == 1.0
    lo, hi = proportion_ci95(15, 20)
    assert lo < 0.75 < hi and 0 < lo and hi < 1
    assert all(math.isnan(v) for v in proportion_ci95(0, 0))
