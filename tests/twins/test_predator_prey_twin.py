"""PredatorPrey: seeding, bookkeeping invariants, control effects, bad input."""

import re

import numpy as np
import pytest
from controlkit.twins import PredatorPrey
from controlkit.twins._common import group_ranks

from controlkit.core.errors import ControlkitError


def test_same_seed_same_trajectory_and_different_seed_differs():
    a = PredatorPrey(seed=3).run([0.0, 0.0], steps=150)
    b = PredatorPrey(seed=3).run([0.0, 0.0], steps=150)
    c = PredatorPrey(seed=4).run([0.0, 0.0], steps=150)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_rng_generator_is_accepted_and_reproducible():
    a = PredatorPrey(rng=np.random.default_rng(7), width=21, height=21, initial_sheep=40, initial_wolves=10)
    b = PredatorPrey(rng=np.random.default_rng(7), width=21, height=21, initial_sheep=40, initial_wolves=10)
    np.testing.assert_array_equal(a.run(None, steps=50), b.run(None, steps=50))


@pytest.mark.parametrize("movement", ["netlogo", "grid"])
def test_bookkeeping_invariants_hold_every_tick(movement):
    m = PredatorPrey(seed=1, width=25, height=25, initial_sheep=60, initial_wolves=20, movement=movement)
    for _ in range(200):
        m.step([0.01, 0.0])
        p = m.params
        for herd in (m.sheep, m.wolves):
            n = herd.size
            assert herd.xy.shape == (n, 2) and herd.heading.shape == (n,) and herd.cell.shape == (n,)
            assert np.all(herd.energy >= 0.0)  # the dead left the table
            assert np.all(herd.xy >= 0) and np.all(herd.xy[:, 0] < p.width) and np.all(herd.xy[:, 1] < p.height)
            cell = np.floor(herd.xy[:, 1]).astype(int) * p.width + np.floor(herd.xy[:, 0]).astype(int)
            np.testing.assert_array_equal(cell, herd.cell)
        sheep_grid, wolf_grid = m.population_grid()
        obs = m.observe()
        assert obs[0] == m.sheep.size == sheep_grid.sum()
        assert obs[1] == m.wolves.size == wolf_grid.sum()
        assert obs[2] == np.count_nonzero(m.grass.data == 0)
        assert m.grass.data.min() >= 0 and m.grass.data.max() <= p.grass_regrowth_time
    assert m.steps == 200
    np.testing.assert_array_equal(m.trajectory()[-1], m.observe())
    assert m.trajectory().shape == (201, 3)


def test_full_cull_empties_both_species_in_one_tick():
    m = PredatorPrey(seed=0)
    m.step([1.0, 1.0])
    assert m.observe()[0] == 0 and m.observe()[1] == 0
    assert tuple(m.removed) == (100, 50)


def test_count_mode_removes_exact_numbers():
    m = PredatorPrey(seed=0, removal="count", max_removal_count=30)
    m.step([12.4, 7.6])  # rounded to 12 and 8
    assert tuple(m.removed) == (12, 8)
    low, high = m.control_bounds()
    assert list(high) == [30.0, 30.0] and list(low) == [0.0, 0.0]


def test_culling_wolves_lowers_wolves_and_raises_sheep():
    seeds = range(4)
    free = np.array([PredatorPrey(seed=s, width=31, height=31, initial_sheep=60, initial_wolves=30).run(
        [0.0, 0.0], steps=200) for s in seeds])
    culled = np.array([PredatorPrey(seed=s, width=31, height=31, initial_sheep=60, initial_wolves=30).run(
        [0.0, 0.03], steps=200) for s in seeds])
    assert culled[:, 100:, 1].mean() < 0.7 * free[:, 100:, 1].mean()
    assert culled[:, 100:, 0].mean() > free[:, 100:, 0].mean()


def test_group_ranks_are_permutations_within_each_group():
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 7, size=200)
    ranks = group_ranks(groups, rng)
    for g in range(7):
        r = np.sort(ranks[groups == g])
        np.testing.assert_array_equal(r, np.arange(r.size))
    # each member of a group of 3 comes first about a third of the time
    firsts = np.zeros(3)
    for _ in range(3000):
        firsts[np.argmin(group_ranks(np.zeros(3, int), rng))] += 1
    assert np.all(np.abs(firsts / 3000 - 1 / 3) < 0.04)


@pytest.mark.parametrize(
    "control, field",
    [([-0.1, 0.0], "control[0] (cull_sheep)"), ([0.0, float("nan")], "control[1] (cull_wolves)"),
     ([0.0, 1.5], "control[1] (cull_wolves)"), ([0.1], "control: expected shape (2,)")],
)
def test_bad_controls_name_the_field(control, field):
    m = PredatorPrey(seed=0, width=11, height=11, initial_sheep=5, initial_wolves=5)
    with pytest.raises(ControlkitError, match=re.escape(field)):
        m.step(control)


def test_bad_schedule_is_rejected_before_any_step():
    m = PredatorPrey(seed=0, width=11, height=11, initial_sheep=5, initial_wolves=5)
    sched = np.zeros((10, 2))
    sched[9, 0] = -1
    with pytest.raises(ControlkitError, match=r"control\[0\]"):
        m.run(sched)
    assert m.steps == 0
    with pytest.raises(ControlkitError, match="controls: expected shape"):
        m.run(np.zeros((10, 3)))
    with pytest.raises(ControlkitError, match="steps"):
        m.run([0.0, 0.0])


@pytest.mark.parametrize(
    "kwargs, field",
    [({"wolfs": 3}, "params.wolfs: unknown parameter"), ({"width": 5, "height": 5}, "params.initial_sheep"),
     ({"sheep_reproduce": 1.5}, "params.sheep_reproduce"), ({"removal": "all"}, "params.removal"),
     ({"width": 0}, "params.width"), ({"movement": "fly"}, "params.movement")],
)
def test_bad_params_name_the_field(kwargs, field):
    with pytest.raises(ControlkitError, match=field):
        PredatorPrey(seed=0, **kwargs)


def test_grid_image_shows_every_animal():
    m = PredatorPrey(seed=0, width=15, height=12, initial_sheep=10, initial_wolves=5)
    img = m.grid_image()
    assert img.shape == (12, 15, 3) and img.dtype == np.uint8
    sheep, wolves = m.population_grid()
    assert np.all(img[wolves > 0] == 20)
    assert np.all(img[(sheep > 0) & (wolves == 0)] == 245)
