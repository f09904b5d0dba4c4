"""ImmuneTwin: seeding, bookkeeping, non-negative fields, control effects, outcome criterion, bad input."""

import re

import numpy as np
import pytest
from controlkit.twins import ImmuneTwin
from controlkit.twins._fields import diffuse
from controlkit.twins.immune import DEAD, HEALTHY, INFECTED, REGROWING

from controlkit.core.errors import ControlkitError

SMALL = dict(width=25, height=25, initial_inoculum=18, resident_macrophages=15)


def test_same_seed_same_trajectory():
    a = ImmuneTwin(seed=5, **SMALL).run([0.2, 0.3], steps=120)
    b = ImmuneTwin(seed=5, **SMALL).run([0.2, 0.3], steps=120)
    c = ImmuneTwin(seed=6, **SMALL).run([0.2, 0.3], steps=120)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_counts_add_up_and_fields_stay_non_negative():
    m = ImmuneTwin(seed=2, **SMALL)
    cells = 25 * 25
    residents = SMALL["resident_macrophages"]
    for t in range(300):
        m.step([0.0, 0.2 if t % 72 < 36 else 0.0])
        obs = m.observe()
        assert obs[:4].sum() == cells
        epi = m.epithelium.data
        assert set(np.unique(epi)) <= {HEALTHY, INFECTED, DEAD, REGROWING}
        n = m.kind.size
        assert m.y.shape == m.x.shape == m.resident.shape == (n,)  # removed cells leave every column
        assert obs[4:7].sum() == n and np.array_equal(obs[4:7], np.bincount(m.kind, minlength=3))
        assert m.resident.sum() == residents  # residents never die
        assert np.all((m.y >= 0) & (m.y < 25) & (m.x >= 0) & (m.x < 25))
        for layer in (m.virus, m.pro, m.anti):
            assert layer.data.min() >= 0.0 and np.isfinite(layer.data).all()
        np.testing.assert_allclose(obs[7:], [m.virus.data.sum(), m.pro.data.sum(), m.anti.data.sum()])
    assert m.kind.size > residents  # recruitment happened
    np.testing.assert_array_equal(m.trajectory()[-1], m.observe())


def _runs(control, steps=300, seeds=range(3)):
    return np.array([ImmuneTwin(seed=s, **SMALL).run(control, steps=steps) for s in seeds])


def test_antiviral_lowers_virus_and_infection():
    free, treated = _runs([0.0, 0.0]), _runs([1.0, 0.0])
    assert treated[:, :, 7].sum(axis=1).mean() < 0.5 * free[:, :, 7].sum(axis=1).mean()
    assert treated[:, :, 1].sum(axis=1).mean() < free[:, :, 1].sum(axis=1).mean()


def test_anti_inflammatory_damps_inflammation_but_slows_clearance():
    free, treated = _runs([0.0, 0.0]), _runs([0.0, 1.0])
    # early on (first 12 h) the pro-inflammatory cytokine is lower under the drug ...
    assert treated[:, :72, 8].mean() < 0.7 * free[:, :72, 8].mean()
    # ... and the price: the infection is cleared more slowly (more infected cell-ticks)
    assert treated[:, :, 1].sum(axis=1).mean() > free[:, :, 1].sum(axis=1).mean()


def test_outcome_criterion():
    m = ImmuneTwin(seed=0, **SMALL)
    cells = 625
    traj = np.zeros((3, 10))
    traj[:, 0] = [cells - 18, 500, cells]  # healthy
    traj[:, 1] = [18, 5, 0]  # infected
    traj[:, 7] = [0.0, 50.0, 0.5]  # virus below clearance_virus at the end
    s = m.summarize(traj)
    assert s["recovered"] == 1.0 and s["failed"] == 0.0 and s["clearance_day"] == 2 / 144
    traj[1, 0] = 0.2 * cells  # healthy fraction once under the fatal threshold (0.3)
    s = m.summarize(traj)
    assert s["recovered"] == 0.0 and s["fatal_damage"] == 1.0 and s["peak_damage"] == pytest.approx(0.8)
    traj[1, 0], traj[-1, 1] = 500, 3  # still infected at the end
    assert m.summarize(traj)["recovered"] == 0.0
    assert np.isnan(m.summarize(traj)["clearance_day"])


def test_failed_flag_tracks_the_minimum_healthy_fraction():
    m = ImmuneTwin(seed=0, **SMALL, fatal_healthy_fraction=0.99)
    m.step()
    assert m.failed == (m.min_healthy_fraction < 0.99)
    assert m.min_healthy_fraction <= m.observe()[0] / 625


def test_diffusion_conserves_mass_and_stays_non_negative():
    rng = np.random.default_rng(0)
    f = np.zeros((20, 30))
    f[3, 4] = 100.0
    f += rng.random(f.shape)
    total = f.sum()
    for rate in (0.1, 0.25, 0.9):  # 0.9 is split into sub-steps
        g = f.copy()
        diffuse(g, rate)
        assert g.min() >= 0 and g.sum() == pytest.approx(total)
        assert g[3, 4] < f[3, 4]
    diffuse(f, 0.2, decay=0.1)
    assert f.sum() == pytest.approx(0.9 * total)


@pytest.mark.parametrize(
    "kwargs, field",
    [({"initial_inoculum": 700, **{k: v for k, v in SMALL.items() if k != "initial_inoculum"}},
      "params.initial_inoculum"),
     ({"nk_kil": 0.1}, "params.nk_kil: unknown parameter"), ({"nk_kill": 1.2}, "params.nk_kill"),
     ({"virus_decay": float("nan")}, "params.virus_decay"), ({"recruit_half": 0.0}, "params.recruit_half"),
     ({"width": 2}, "params.width")],
)
def test_bad_params_name_the_field(kwargs, field):
    with pytest.raises(ControlkitError, match=re.escape(field)):
        ImmuneTwin(seed=0, **kwargs)


@pytest.mark.parametrize("control, field", [([0.5, -0.1], "control[1] (anti_inflammatory)"),
                                            ([np.nan, 0.0], "control[0] (antiviral)"),
                                            ([0.5], "control: expected shape (2,)")])
def test_bad_controls_name_the_field(control, field):
    with pytest.raises(ControlkitError, match=re.escape(field)):
        ImmuneTwin(seed=0, **SMALL).step(control)


def test_grid_image_marks_immune_cells():
    m = ImmuneTwin(seed=0, **SMALL)
    img = m.grid_image()
    assert img.shape == (25, 25, 3) and img.dtype == np.uint8
    assert np.all(img[m.y, m.x] == (240, 200, 0))  # only macrophages at tick 0


def test_inflammation_injures_healthy_tissue():
    def dead_after_storm(toxicity):
        m = ImmuneTwin(seed=0, **{**SMALL, "initial_inoculum": 0}, cytokine_toxicity=toxicity)
        m.pro.data[:] = 20.0  # a cytokine storm without any virus
        m.step()
        return m.observe()[2]

    assert dead_after_storm(0.0) == 0
    assert 200 < dead_after_storm(0.5) < 400  # about half of the 625 cells at a saturating level
