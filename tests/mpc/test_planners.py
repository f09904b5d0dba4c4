"""Sampling and gradient planners: same interface, same constructor arguments, seeded."""

import numpy as np
import pytest

from controlkit import Status
from controlkit.planning import MIPMPC, CEMPlanner, GradientPlanner, MPPIPlanner, RandomShootingPlanner

PLANNERS = [
    (RandomShootingPlanner, {"n_samples": 300}),
    (CEMPlanner, {"n_samples": 100, "iterations": 4}),
    (MPPIPlanner, {"n_samples": 100, "iterations": 4}),
    (GradientPlanner, {"iterations": 30, "n_restarts": 4}),
]


@pytest.mark.parametrize(("cls", "kw"), PLANNERS)
def test_planner_plans_are_seeded_and_consistent(small_net, cls, kw):
    x0, goal = np.array([0.1, 0.0, -0.1]), np.array([0.5, -0.5, 0.3])
    args = (small_net, 4, [-1, -1], [1, 1])
    p1 = cls(*args, control_weight=0.1, seed=3, **kw).plan(x0, goal)
    p2 = cls(*args, control_weight=0.1, seed=3, **kw).plan(x0, goal)
    np.testing.assert_array_equal(p1.actions, p2.actions)
    assert p1.status is Status.OK and p1.actions.shape == (4, 2)
    assert (p1.actions >= -1).all() and (p1.actions <= 1).all()
    np.testing.assert_allclose(p1.states, small_net.rollout(x0, p1.actions))
    mip = MIPMPC(*args, control_weight=0.1).plan(x0, goal)
    assert mip.objective <= p1.objective + 1e-6
    # the planner searches: its plan beats the average uniformly random sequence
    rand = np.random.default_rng(0).uniform(-1, 1, (200, 4, 2))
    states = np.stack([small_net.rollout(x0, a) for a in rand])
    prob = MIPMPC(*args, control_weight=0.1).problem
    assert p1.objective < prob.cost(states, rand, prob.check_goal(goal)).mean()


@pytest.mark.parametrize(("cls", "kw"), PLANNERS)
def test_planner_act_warm_starts_from_shifted_plan(small_net, cls, kw):
    planner = cls(small_net, 4, [-1, -1], [1, 1], goal=np.zeros(3), seed=0, **kw)
    x = np.array([0.3, 0.3, 0.3])
    u = planner.act(x)
    first = planner.last_plan
    x = small_net.step(x, u)
    planner.act(x)
    assert planner.last_step.fallback is None
    # the shifted previous plan is among the candidates, so the new plan is no worse than it
    shifted = np.concatenate([first.actions[1:], first.actions[-1:]])
    prob = planner.problem
    shifted_cost = prob.cost(small_net.rollout(x, shifted), shifted, prob.check_goal(np.zeros(3)))
    assert planner.last_plan.objective <= shifted_cost + 1e-9
    planner.reset(seed=0)
    assert planner.last_plan is None
