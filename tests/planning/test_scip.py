"""SCIP (the solver diagnostic) solves the compiled MILP to the optimum HiGHS finds, from the same MIP start."""

import numpy as np
import pytest

from controlkit import Status
from controlkit.planning import MIPMPC
from controlkit.planning.milp import HighsMILP, assemble

pytest.importorskip("pyscipopt")

from controlkit.planning.milp import solve_scip  # noqa: E402


def _problem(small_net):
    mpc = MIPMPC(small_net, 3, [-1, -1], [1, 1], control_weight=0.05, x_low=[-3] * 3, x_high=[3] * 3, mip_gap=1e-7)
    x0 = np.array([0.2, -0.1, 0.0])
    goal = mpc.problem.check_goal(np.array([0.6, 0.2, -0.4]))
    return mpc, x0, goal, mpc.bounds(x0)


def test_scip_reaches_the_highs_optimum_from_the_same_start(small_net):
    mpc, x0, goal, bounds = _problem(small_net)
    best = mpc.plan(x0, goal)
    assert best.status is Status.OK
    arrays, _ = assemble(mpc.problem, bounds, x0, goal)
    milp = HighsMILP(mpc.problem, bounds, x0, goal)
    start = milp.start_vector(x0, np.zeros((3, 2)), goal, bounds)
    res = solve_scip(arrays, start=start, mip_gap=1e-7, node_limit=10_000)
    assert res.status == "optimal" and res.start_accepted
    assert res.objective == pytest.approx(best.objective, rel=1e-6, abs=1e-8)
    assert res.dual_bound <= res.objective + 1e-9
    assert np.isnan(res.root_dual_bound) or res.root_dual_bound <= res.dual_bound + 1e-9
    u = res.values[milp.layout.u_cols]
    np.testing.assert_allclose(res.values[milp.layout.x_cols], small_net.rollout(x0, u), atol=1e-5)


def test_scip_node_limit_stops_the_search(make_net):
    net = make_net([12, 12], nx=4, nu=2, seed=5, scale=1.0)
    mpc = MIPMPC(net, 4, [-1, -1], [1, 1])
    x0, goal = np.zeros(4), mpc.problem.check_goal(np.ones(4))
    bounds = mpc.bounds(x0)
    arrays, _ = assemble(mpc.problem, bounds, x0, goal)
    start = HighsMILP(mpc.problem, bounds, x0, goal).start_vector(x0, np.zeros((4, 2)), goal, bounds)
    res = solve_scip(arrays, start=start, node_limit=1, mip_gap=0.0)
    assert res.status == "nodelimit" and res.nodes == 1
    assert res.objective < np.inf and res.root_dual_bound <= res.dual_bound + 1e-9 <= res.objective + 2e-9
