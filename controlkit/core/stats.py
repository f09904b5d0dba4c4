"""Summary statistics shared by experiments: mean and Student-t 95 % confidence half-width."""

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
