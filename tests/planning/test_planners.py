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


@pytest.mark.parametrize("cls, field, bad, message", [
    (RandomShootingPlanner, "n_samples", 0, "n_samples: must be an integer >= 1, got 0."),
    (RandomShootingPlanner, "n_samples", -5, "n_samples: must be an integer >= 1, got -5."),
    (RandomShootingPlanner, "n_samples", 2.5, "n_samples: must be an integer >= 1, got 2.5."),
    (RandomShootingPlanner, "penalty", float("inf"), "penalty: must be a finite number >= 0, got inf."),
    (RandomShootingPlanner, "penalty", float("nan"), "penalty: must be a finite number >= 0, got nan."),
    (RandomShootingPlanner, "seed", -1, "seed: must be an integer >= 0, got -1."),
    (CEMPlanner, "elite_frac", 0.0, "elite_frac: must be a finite number in (0, 1], got 0.0."),
    (CEMPlanner, "elite_frac", 1.5, "elite_frac: must be a finite number in (0, 1], got 1.5."),
    (CEMPlanner, "iterations", 0, "iterations: must be an integer >= 1, got 0."),
    (MPPIPlanner, "temperature", float("nan"), "temperature: must be a finite number > 0, got nan."),
    (MPPIPlanner, "temperature", 0.0, "temperature: must be a finite number > 0, got 0.0."),
    (MPPIPlanner, "temperature", float("inf"), "temperature: must be a finite number > 0, got inf."),
    (MPPIPlanner, "noise_std", -0.1, "noise_std: must be a finite number >= 0, got -0.1."),
    (MPPIPlanner, "n_samples", "many", "n_samples: must be an integer >= 1, got 'many'."),
    (GradientPlanner, "lr", float("nan"), "lr: must be a finite number > 0, got nan."),
    (GradientPlanner, "lr", -0.01, "lr: must be a finite number > 0, got -0.01."),
    (GradientPlanner, "n_restarts", 0, "n_restarts: must be an integer >= 1, got 0."),
])
def test_bad_knobs_are_refused_at_construction_by_field_name(small_net, cls, field, bad, message):
    import re

    from controlkit import ControlkitError

    with pytest.raises(ControlkitError, match=re.escape(message)):
        cls(small_net, 3, [-1, -1], [1, 1], **{field: bad})
