"""MetabolicPathway: seeding, conservation, bookkeeping, the inflow control, scale, bad input."""

import re

import numpy as np
import pytest
from controlkit.twins import MetabolicPathway
from controlkit.twins.metabolic import HOLE, SUBSTRATE, A

from controlkit.core.errors import ControlkitError

SMALL = dict(scale=0.02)


def test_same_seed_same_trajectory():
    a = MetabolicPathway(seed=1, **SMALL).run([30.0], steps=80)
    b = MetabolicPathway(seed=1, **SMALL).run([30.0], steps=80)
    c = MetabolicPathway(seed=2, **SMALL).run([30.0], steps=80)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_published_counts_at_scale_one_and_proportional_counts_below():
    full = MetabolicPathway(seed=0).observe()
    np.testing.assert_array_equal(full[:5], [80_000, 20_000, 20_000, 10, 10])
    m = MetabolicPathway(seed=0, scale=0.25)
    assert m.side == 50 and m.observe()[0] == 20_000 and m.enz_type.size == 4 * 50


def test_molecules_are_conserved_without_inflow_and_grow_by_the_inflow():
    m = MetabolicPathway(seed=3, **SMALL)
    total = m.observe()[:5].sum()
    for _ in range(150):
        m.step([0.0])
        assert m.observe()[:5].sum() == total
    for _ in range(100):
        m.step([50.0])
        total += m.added
        assert m.observe()[:5].sum() == total
    assert total > m.trajectory()[0, :5].sum()  # the inflow did add molecules


def test_bookkeeping_invariants():
    m = MetabolicPathway(seed=4, **SMALL)
    for _ in range(120):
        m.step([20.0])
        rows = m.free_molecules
        assert np.all(m.mol_type[rows] >= 0)
        ij = np.minimum(m.mol_xy[rows].astype(int), m.side - 1)
        np.testing.assert_array_equal(m.mol_cell[rows], ij[:, 1] * m.side + ij[:, 0])
        assert np.all((m.mol_xy[rows] >= 0) & (m.mol_xy[rows] < m.side))
        busy = m.cargo >= 0
        np.testing.assert_array_equal(m.cargo[busy], SUBSTRATE[m.enz_type[busy]])  # each holds its own substrate
        assert not np.any(m.regulated & (m.enz_type == A) & busy)  # an inhibited A holds no S
        free = np.bincount(m.mol_type[rows], minlength=5)
        bound = np.bincount(m.cargo[busy], minlength=5)
        expected = free + bound
        expected[3] += m.regulated.sum()
        np.testing.assert_array_equal(m.observe()[:5], expected)
        assert m.density.data.sum() == rows.size
    assert np.any(m.mol_type == HOLE) or m.mol_type.size == m.free_molecules.size


def test_more_inflow_means_more_substrate_and_more_product():
    # Start without S, so the substrate that reaches A is the inflow (at the published densities A is saturated).
    def run(u):
        return np.array([MetabolicPathway(seed=s, initial_S=0, **SMALL).run([u], steps=300) for s in range(3)])

    none, fed = run(0.0), run(200.0)
    assert fed[:, -1, 0].mean() > none[:, -1, 0].mean() + 200  # S accumulates
    made = lambda tr: tr[:, -1, 1:5].sum(axis=1) - tr[:, 0, 1:5].sum(axis=1)  # noqa: E731
    assert made(none).max() == 0 and made(fed).min() > 100  # S -> P needs S


def test_summary_yield_uses_the_mass_balance():
    m = MetabolicPathway(seed=0, **SMALL)
    tr = m.run([40.0], steps=100)
    s = m.summarize(tr)
    assert s["S_added"] == tr[-1, :5].sum() - tr[0, :5].sum() > 0
    assert 0.0 <= s["selectivity_R"] <= 1.0


@pytest.mark.parametrize("kwargs, field", [({"scale": 0.0}, "params.scale"), ({"scale": 2.0}, "params.scale"),
                                           ({"p_react": 0.8, "p_release": 0.5}, "params.p_react + p_release"),
                                           ({"enzymes": 5}, "params.enzymes: unknown parameter"),
                                           ({"initial_S": -1}, "params.initial_S")])
def test_bad_params_name_the_field(kwargs, field):
    with pytest.raises(ControlkitError, match=re.escape(field)):
        MetabolicPathway(seed=0, **kwargs)


@pytest.mark.parametrize("control, field", [([-1.0], "control[0] (inflow)"), ([np.nan], "control[0] (inflow)"),
                                            ([1.0, 2.0], "control: expected shape (1,)"),
                                            ([5000.0], "control[0] (inflow)")])
def test_bad_controls_name_the_field(control, field):
    with pytest.raises(ControlkitError, match=re.escape(field)):
        MetabolicPathway(seed=0, **SMALL).step(control)


def test_scalar_control_and_image():
    m = MetabolicPathway(seed=0, **SMALL)
    m.step(10.0)  # one control: a bare number is accepted
    img = m.grid_image()
    assert img.shape == (m.side, m.side, 3) and img.dtype == np.uint8
    assert np.all(img.reshape(-1, 3)[m.enz_cell] == 255)
