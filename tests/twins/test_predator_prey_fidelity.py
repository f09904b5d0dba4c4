"""The predator–prey twin against the companion study's averaged NetLogo runs (tests/data/twins/SOURCE.md).

The fast test runs a ninth of the companion's world (85×85, densities kept) for 1000 ticks on three seeds; the
slow one runs the full 255×255 world with 2 % of the sheep culled per tick. ``benchmarks/twin_fidelity.py``
measures both at full size over more seeds.
"""

from pathlib import Path

import numpy as np
import pytest
from controlkit.twins.companion import load_netlogo_averages, steady_state

DATA = Path(__file__).resolve().parents[1] / "data" / "twins"


def _relative_error(runs, reference):
    return np.mean([r.mean for r in runs], axis=0)[:2] / reference[:2] - 1


def test_netlogo_data_loads_in_twin_column_order():
    ya = load_netlogo_averages(DATA / "Dados01.mat")
    assert ya.shape == (1001, 3)
    np.testing.assert_allclose(ya[0, :2], [2500, 1250])  # sheep, wolves at set-up
    assert 30_000 < ya[0, 2] < 35_000  # about half of the 65 025 patches start green


def test_uncontrolled_populations_within_5_percent_of_netlogo():
    reference = load_netlogo_averages(DATA / "Dados01.mat")[800:1000].mean(0)
    runs = [steady_state(85, seed) for seed in range(3)]
    error = _relative_error(runs, reference)
    assert np.all(np.abs(error) <= 0.05), f"sheep, wolves off by {error}"
    # The regression: a countdown one tick short (grass back one tick early, as before the fix) feeds more sheep
    # and so more wolves, and lands further from NetLogo on the same seeds.
    early = _relative_error([steady_state(85, seed, grass_regrowth_time=29) for seed in range(3)], reference)
    assert abs(error[1]) < abs(early[1]) and early[1] > 0.03


@pytest.mark.slow
def test_sheep_cull_populations_match_netlogo_at_full_size():
    reference = load_netlogo_averages(DATA / "DadosConSheep2.mat")[2000:2500].mean(0)
    runs = np.array([steady_state(255, seed, cull_sheep=0.02, window=(2000, 2500)).mean for seed in range(4)])
    assert abs(runs[:, 0].mean() / reference[0] - 1) <= 0.05
    # The wolves (about 270 on 65 025 patches) vary by about 8 % between runs: NetLogo's 100-run mean must lie
    # inside the twin's 95 % interval over its runs.
    from controlkit.core.stats import mean_ci95

    mean, ci = mean_ci95(runs[:, 1])
    assert mean - ci <= reference[1] <= mean + ci, (mean, ci, reference[1])
