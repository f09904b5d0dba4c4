"""Summary statistics shared by experiments: mean and Student-t 95 % confidence half-width, and the Wilson
95 % interval of a success rate."""

from __future__ import annotations

import numpy as np


def mean_ci95(values) -> tuple[float, float]:
    """Return ``(mean, half_width)`` of the 95 % t-interval; the half-width is 0 for fewer than two values."""
    x = np.asarray(values, dtype=float).ravel()
    if x.size == 0:
        return float("nan"), float("nan")
    if x.size < 2:
        return float(x.mean()), 0.0
    # scipy loads here, not at import: the core must import on machines that only run exported policies.
    from scipy import stats as _st

    sem = x.std(ddof=1) / np.sqrt(x.size)
    return float(x.mean()), float(sem * _st.t.ppf(0.975, x.size - 1))


def proportion_ci95(successes: int, trials: int) -> tuple[float, float]:
    """The Wilson score 95 % interval ``(low, high)`` of a success rate (``(nan, nan)`` without trials).

    Unlike the normal approximation it stays inside [0, 1] and is not empty at 0 % or 100 %, which is where
    small closed-loop comparisons often land.
    """
    if trials <= 0:
        return float("nan"), float("nan")
    from scipy import stats as _st

    ci = _st.binomtest(int(successes), int(trials)).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)
