"""The companion's metabolic-pathway rules (controlkit.twins.metabolic_companion) against their averaged runs.

``tests/data/twins/metabolic_companion_averages.npz`` holds every 100th tick of the companion's 100-run averages
(``MetPw_TrainingDatasets.mat``; see tests/data/twins/SOURCE.md): batch mode, and continuous mode with dilution
0.0005 and an inflow of 1.0 S per tick.
"""

from pathlib import Path

import numpy as np
import pytest
from controlkit.twins.metabolic_companion import STATES, CompanionPathway

from controlkit.core.errors import ControlkitError

DATA = Path(__file__).resolve().parents[1] / "data" / "twins" / "metabolic_companion_averages.npz"
MODES = {"batch": (0.0, 0.0), "inflow_1_0": (0.0005, 1.0)}


def _mean_run(mode: str, scale: float, seeds: int, ticks: int) -> np.ndarray:
    dilution, inflow = MODES[mode]
    runs = []
    for seed in range(seeds):
        twin = CompanionPathway(seed=seed, scale=scale, dilution=dilution)
        runs.append(twin.run([inflow], steps=ticks)[:, :5] / twin.area_scale)
    return np.mean(runs, axis=0)


@pytest.mark.parametrize("mode", list(MODES))
def test_small_twin_follows_the_companion_averages(mode):
    # A twentieth of the companion's area (22 x 22 cells, 10 enzymes of each kind), two runs, 2000 ticks. S and Q
    # are thousands to tens of thousands of molecules and must lie within 3 % of the companion's 100-run mean; P,
    # R and T (hundreds of molecules at this size, carried by 10 enzymes) vary by about 10 % between runs and
    # must lie within 15 %. At a quarter of the area the same comparison is within about 7 % (the slow test).
    ref = np.load(DATA)[mode]
    ours = _mean_run(mode, 0.05, 2, 2000)
    for tick in (1000, 2000):
        err = ours[tick] / ref[tick // 100] - 1
        assert np.all(np.abs(err[[0, 2]]) <= 0.03), (tick, err)
        assert np.all(np.abs(err[[1, 3, 4]]) <= 0.15), (tick, err)


@pytest.mark.slow
@pytest.mark.parametrize("mode", list(MODES))
def test_quarter_size_twin_within_10_percent_of_the_companion(mode):
    ref = np.load(DATA)[mode]
    ours = _mean_run(mode, 0.25, 1, 3000)
    for tick in (1000, 2000, 3000):
        err = ours[tick] / ref[tick // 100] - 1
        assert np.all(np.abs(err) <= 0.10), (tick, err)


def test_batch_mode_conserves_molecules_bound_and_free():
    # Without inflow and dilution every molecule is either free or held by an enzyme complex.
    twin = CompanionPathway(seed=3, scale=0.02, dilution=0.0)
    held = {"AS": 1, "AP": 1, "AR": 1, "EP": 1, "EQ": 1, "IQ": 1, "IR": 1, "OP": 1, "OT": 1, "OR": 1, "ORP": 2,
            "ORT": 2}

    def total():
        states = twin.enzyme_states()
        return twin.observe()[:5].sum() + sum(n * states[s] for s, n in held.items())

    start = total()
    twin.run([0.0], steps=300)
    assert total() == start
    assert sum(twin.enzyme_states().values()) == 4 * round(200 * twin.area_scale)
    assert set(twin.enzyme_states()) == set(STATES)


def test_inflow_feeds_whole_molecules_with_the_fraction_carried():
    # 0.3 S per tick on a 10 x 10 world (1 % of the area) is 0.003 per tick: exactly one molecule in 334 ticks.
    twin = CompanionPathway(seed=0, scale=0.01, initial_S=0, initial_P=0, initial_Q=0, initial_R=0, initial_T=0,
                            enzymes_each=0, dilution=0.0)
    twin.run([0.3], steps=333)
    assert twin.observe()[0] == 0
    twin.run([0.3], steps=1)
    assert twin.observe()[0] == 1


def test_same_seed_same_run_and_bad_parameters_are_named():
    a = CompanionPathway(seed=5, scale=0.01).run([1.0], steps=50)
    b = CompanionPathway(seed=5, scale=0.01).run([1.0], steps=50)
    c = CompanionPathway(seed=6, scale=0.01).run([1.0], steps=50)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    with pytest.raises(ControlkitError, match="params.bind_AS"):
        CompanionPathway(seed=0, bind_AS=120.0)
    with pytest.raises(ControlkitError, match="release_ORP \\+ cat_ORP \\+ release_OR"):
        CompanionPathway(seed=0, cat_ORP=99.5)
    with pytest.raises(ControlkitError, match="control\\[0\\] \\(inflow\\)"):
        CompanionPathway(seed=0, scale=0.01).step([50.0])
