"""Per-twin objectives of the control layer: formulas, implied settings, L1 forms, and one ABM episode each."""

import numpy as np
import pytest
import torch
from controlkit.twins import make_task, twin_names
from controlkit.twins.baselines import BangBangController, ConstantTwinController
from controlkit.twins.deploy import run_episode
from controlkit.twins.objectives import TwinTask, make_objective

from controlkit.core.errors import ControlkitError


def test_every_twin_has_an_objective():
    from controlkit.twins import Objective, get_twin

    assert {"immune", "metabolic", "predator_prey"} <= set(twin_names())
    for name in twin_names():
        spec = get_twin(name)
        assert issubclass(spec.objective, Objective) and spec.objective.TWIN == name


def test_implied_settings_come_from_twin_params():
    assert make_objective("immune", twin_params={"width": 11, "height": 9}).cells == 99
    assert make_objective("metabolic", twin_params={"scale": 0.05}).scale == 0.05
    assert make_objective("metabolic", twin_params={"scale": 0.05}, scale=0.1).scale == 0.1


def test_terms_agree_between_numpy_and_torch():
    obj = make_objective("metabolic", twin_params={"scale": 0.5})
    prev, obs, rate = np.array([[10.0, 5, 5, 2, 1, 0, 0]]), np.array([[8.0, 6, 5, 4, 2, 0, 0]]), np.array([[30.0]])
    t = obj.terms(prev, obs, rate)
    assert t["product"][0] == pytest.approx(-4.0) and t["side_product"][0] == pytest.approx(2.0)
    c_np = obj.cost(prev, obs, rate)
    c_t = obj.cost(*(torch.as_tensor(a) for a in (prev, obs, rate)))
    assert float(c_t[0]) == pytest.approx(float(c_np[0])) == pytest.approx(-4.0 + 0.02 * 30)


def test_immune_l1_form_reproduces_the_cost():
    obj = make_objective("immune", twin_params={"width": 10, "height": 10})
    goal, q, lam = obj.l1_form(10)
    obs = np.array([70.0, 6, 20, 4, 3, 2, 1, 5.0, 2.0, 1.0])
    u = np.array([0.5, 0.25])
    l1 = float(np.sum(q * np.abs(obs - goal)) + lam * np.abs(u).sum())
    assert l1 == pytest.approx(float(obj.cost(obs, obs, u)))
    with pytest.raises(ControlkitError, match="methods: mip_mpc"):
        make_objective("metabolic").l1_form(7)
    with pytest.raises(ControlkitError, match="methods: mip_mpc"):
        make_objective("predator_prey", fraction=True).l1_form(3)


def test_immune_episode_on_the_abm():
    params = {"width": 15, "height": 15}
    task = TwinTask("immune", params, make_objective("immune", twin_params=params), burn_in=12, interval=12,
                    decisions=4, apply="hold")
    none = run_episode(task, ConstantTwinController([0.0, 0.0]), 0)
    bb = run_episode(task, BangBangController(task), 0)
    assert none.obs.shape == (49, 10) and none.parts["dose"] == 0
    assert set(np.unique(bb.decisions)) <= {0.0, 1.0}
    assert {"final_damage", "recovered", "clearance_day"} <= set(none.outcomes)


def test_metabolic_episode_on_the_abm():
    params = {"scale": 0.02, "initial_S": 0, "initial_P": 0, "initial_Q": 0}
    task = TwinTask("metabolic", params, make_objective("metabolic", twin_params=params), burn_in=0, interval=5,
                    decisions=4, apply="hold", u_high=(300.0,))
    ep = run_episode(task, ConstantTwinController([300.0]), 0)
    assert ep.outcomes["S_fed"] == pytest.approx(300.0 * 20)
    assert ep.parts["inflow"] == pytest.approx(300.0)
    with pytest.raises(ControlkitError, match="u_high"):
        TwinTask("metabolic", params, make_objective("metabolic"), u_high=(5000.0,))
    with pytest.raises(ControlkitError, match="objective: a predator_prey objective cannot score the metabolic"):
        TwinTask("metabolic", params, make_objective("predator_prey"))


def test_metabolic_bang_bang_switches():
    # The rule feeds while the substrate is low and stops once it is stocked: both bounds occur in one episode
    # (the earlier rule, on the 0-3 inhibited A enzymes, fed at the maximum throughout).
    task = make_task("metabolic", {"scale": 0.02}, decisions=12)
    ep = run_episode(task, BangBangController(task), 0)
    assert set(np.unique(ep.decisions)) == {0.0, 300.0}
    with pytest.raises(ControlkitError, match="objective.s_low"):
        make_objective("metabolic", s_low=-1)
