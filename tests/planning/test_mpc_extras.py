"""Optional parts of the problem: per-step goals, terminal weight, linear state constraints, keep-out boxes."""

import numpy as np
import pytest

from controlkit import ControlkitError, Status
from controlkit.planning import MIPMPC, KeepOut, MPPIPlanner


def _mpc(net, horizon=3, **kw):
    return MIPMPC(net, horizon, -np.ones(net.nu), np.ones(net.nu), mip_gap=1e-6, **kw)


def test_per_step_goals_and_terminal_weight(small_net):
    x0 = np.zeros(3)
    goals = np.array([[0.1, 0.0, 0.0], [0.3, -0.2, 0.1], [0.6, -0.4, 0.2]])
    mpc = _mpc(small_net, terminal_weight=5.0)
    plan = mpc.plan(x0, goals)
    assert plan.status is Status.OK
    w = np.array([[1.0] * 3, [1.0] * 3, [5.0] * 3])
    expected = (w * np.abs(plan.states[1:] - goals)).sum()
    assert plan.objective == pytest.approx(expected, abs=1e-6)
    # the per-step goal changes the optimum relative to tracking the last goal at every step
    last_only = _mpc(small_net, terminal_weight=5.0).plan(x0, goals[-1])
    assert last_only.objective != pytest.approx(plan.objective, abs=1e-6)


def test_linear_state_constraints_hold_and_cost_something(small_net):
    x0, goal = np.zeros(3), np.array([1.0, 1.0, 1.0])
    free = _mpc(small_net).plan(x0, goal)
    a, b = np.array([[1.0, 1.0, 0.0]]), np.array([0.0])  # x_0 + x_1 <= 0
    assert (free.states[1:] @ a.T > 1e-6).any()  # the constraint is active
    plan = _mpc(small_net, state_constraints=(a, b)).plan(x0, goal)
    assert plan.status is Status.OK
    assert (plan.states[1:] @ a.T <= b + 1e-6).all()
    assert plan.objective >= free.objective - 1e-9


def test_keep_out_box_is_avoided(small_net):
    x0 = np.zeros(3)
    free = _mpc(small_net, horizon=4).plan(x0, np.array([0.8, 0.0, 0.0]))
    # put a box around the unconstrained plan's second state (coordinates 0 and 1)
    centre = free.states[2, :2]
    box = KeepOut((0, 1), tuple(centre - 0.05), tuple(centre + 0.05))
    mpc = _mpc(small_net, horizon=4, keep_out=[box], x_low=[-4] * 3, x_high=[4] * 3)
    plan = mpc.plan(x0, np.array([0.8, 0.0, 0.0]))
    assert plan.status is Status.OK
    xy = plan.states[1:, :2]
    inside = np.all((xy > np.array(box.low) + 1e-6) & (xy < np.array(box.high) - 1e-6), axis=1)
    assert not inside.any()
    assert mpc.problem.violation(plan.states) == pytest.approx(0.0, abs=1e-6)
    assert plan.objective >= free.objective - 1e-9


def test_soft_keep_out_box_equals_the_hard_one_when_it_can_be_avoided(small_net):
    goal = np.array([0.8, 0.0, 0.0])
    centre = _mpc(small_net, horizon=4).plan(np.zeros(3), goal).states[2, :2]
    box = (0, 1), tuple(centre - 0.05), tuple(centre + 0.05)
    kw = dict(horizon=4, x_low=[-4] * 3, x_high=[4] * 3)
    hard = _mpc(small_net, keep_out=[KeepOut(*box)], **kw).plan(np.zeros(3), goal)
    soft_mpc = _mpc(small_net, keep_out=[KeepOut(*box, penalty=1e3)], **kw)
    soft = soft_mpc.plan(np.zeros(3), goal)
    assert soft.status is Status.OK and hard.status is Status.OK
    assert soft.objective == pytest.approx(hard.objective, rel=1e-6, abs=1e-7)
    assert soft.extras["violation"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("polish_lps", [0, 3])  # the region descent fixes the box's side binaries to its start's
def test_soft_keep_out_box_leaves_by_the_shortest_way_when_the_hard_one_is_infeasible(small_net, polish_lps):
    # x0 deep inside a box too wide to leave within the horizon (actions in [-0.05, 0.05])
    box = (0, 1), (-1.0, -1.0), (1.0, 1.0)
    x0, goal = np.zeros(3), np.array([0.3, 0.0, 0.0])
    kw = dict(u_low=[-0.05] * 2, u_high=[0.05] * 2, x_low=[-4] * 3, x_high=[4] * 3, mip_gap=1e-7)
    hard = MIPMPC(small_net, 3, keep_out=[KeepOut(*box)], **kw).plan(x0, goal)
    assert hard.status is Status.INFEASIBLE
    mpc = MIPMPC(small_net, 3, keep_out=[KeepOut(*box, penalty=50.0)], polish_lps=polish_lps, **kw)
    plan = mpc.plan(x0, goal, warm_start=np.zeros((3, 2)))
    assert plan.status is Status.OK and plan.extras.get("polish_lps", 0) >= min(polish_lps, 1)
    p = mpc.problem
    assert plan.extras["violation"] > 0
    # the MILP's objective is the cost plus the exact penalty of the depth inside, and nothing does better
    assert plan.objective == pytest.approx(float(p.objective(plan.states, plan.actions, p.check_goal(goal))), rel=1e-5)
    rng = np.random.default_rng(0)
    for _ in range(50):
        a = rng.uniform(-0.05, 0.05, size=(3, 2))
        assert plan.objective <= float(p.objective(small_net.rollout(x0, a), a, p.check_goal(goal))) + 1e-6


def test_sampling_planner_prices_a_soft_box_at_its_own_penalty(small_net):
    import torch

    box = KeepOut((0, 1), (-1.0, -1.0), (1.0, 1.0), penalty=7.0)
    planner = MPPIPlanner(small_net, 3, [-1, -1], [1, 1], x_low=[-4] * 3, x_high=[4] * 3, keep_out=[box], seed=0)
    p, goal, a = planner.problem, planner.problem.check_goal(np.zeros(3)), np.full((3, 2), 0.1)
    states = small_net.rollout(np.zeros(3), a)
    assert p.violation(states) > 0 and p.violation(states, hard_only=True) == 0
    torch_cost = planner._cost(torch.as_tensor(states)[None], torch.as_tensor(a)[None], torch.as_tensor(goal))
    assert float(torch_cost[0]) == pytest.approx(float(p.objective(states, a, goal)), rel=1e-9)


def test_sampling_planner_penalises_keep_out(small_net):
    box = KeepOut((0, 1), (-0.2, -0.2), (0.2, 0.2))
    planner = MPPIPlanner(small_net, 3, [-1, -1], [1, 1], x_low=[-4] * 3, x_high=[4] * 3, keep_out=[box], seed=0)
    plan = planner.plan(np.zeros(3), np.zeros(3))
    assert plan.extras["violation"] >= 0.0
    assert np.isfinite(plan.objective)


def test_bad_extras(small_net):
    with pytest.raises(ControlkitError, match="state_constraints"):
        _mpc(small_net, state_constraints=(np.ones((1, 2)), [0.0]))
    with pytest.raises(ControlkitError, match="keep_out"):
        _mpc(small_net, keep_out=[KeepOut((0, 5), (0, 0), (1, 1))], x_low=[-1] * 3, x_high=[1] * 3)
    for penalty in (0.0, -1.0, float("inf")):
        with pytest.raises(ControlkitError, match="keep_out: penalty"):
            _mpc(small_net, keep_out=[KeepOut((0, 1), (0, 0), (1, 1), penalty)], x_low=[-1] * 3, x_high=[1] * 3)
    with pytest.raises(ControlkitError, match="terminal_weight"):
        _mpc(small_net, terminal_weight=-1.0)
