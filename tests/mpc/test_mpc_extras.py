"""Optional parts of the problem: per-step goals, terminal weight, linear state constraints, keep-out boxes."""

import numpy as np
import pytest

from controlkit import ControlkitError, Status
from controlkit.mpc import MIPMPC, KeepOut, MPPIPlanner


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
    with pytest.raises(ControlkitError, match="terminal_weight"):
        _mpc(small_net, terminal_weight=-1.0)
