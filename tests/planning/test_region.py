"""The region LP over the actions alone against the full MILP with its binaries fixed, and the region descent."""

import highspy
import numpy as np
import pytest

from controlkit.planning.milp.bounds import symbolic
from controlkit.planning.milp.highs import HighsMILP
from controlkit.planning.milp.region import RegionLP, region_descent
from controlkit.planning.mip_mpc import MIPMPC
from controlkit.planning.problem import KeepOut

H = 4
VARIANTS = {
    "plain": {},
    "control_weight": {"control_weight": 0.05},
    "state_constraints": {"state_constraints": ([[1.0, 1.0, 0.0]], [0.8])},
    # x0 lies inside the soft box: plans cross it at a price
    "soft_keep_out": {"keep_out": [KeepOut((0, 1), (0.0, -0.6), (0.7, 0.3), penalty=5.0)]},
    "hard_keep_out": {"keep_out": [KeepOut((0, 1), (0.1, -0.2), (0.5, 0.2))]},
}


def _problem(net, **kw):
    mpc = MIPMPC(net, H, -np.ones(2), np.ones(2), x_low=[-2.0] * 3, x_high=[2.0] * 3, terminal_weight=3.0,
                 tighten_steps=0, **kw)
    return mpc.problem


def _fixed_milp_objective(problem, bounds, x0, actions, goal):
    """The full MILP with every binary fixed to the pattern (and keep-out sides) of ``actions``: its LP optimum."""
    milp = HighsMILP(problem, bounds, x0, goal)
    ints = np.flatnonzero([int(v) for v in milp.h.getLp().integrality_]).astype(np.int32)
    val = milp.start_vector(x0, actions, goal, bounds)
    milp.h.changeColsBounds(ints.size, ints, val[ints], val[ints])
    milp.h.run()
    if milp.h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    return float(milp.h.getInfo().objective_function_value)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_region_lp_is_the_milp_with_its_binaries_fixed(make_net, variant):
    net = make_net([8, 8], nx=3, nu=2, seed=4, identity_frac=0.3)
    p = _problem(net, **VARIANTS[variant])
    rng = np.random.default_rng(1)
    x0, goal = np.array([0.2, -0.3, 0.1]), p.check_goal([0.6, 0.4, -0.2])
    bounds = symbolic(p, x0)
    assert bounds.count(p)["binaries"] > 10  # the regions differ from plan to plan
    lp = RegionLP(p, bounds, x0, goal)
    solved = 0
    for _ in range(6):
        a = rng.uniform(-1, 1, size=(H, 2))
        got = lp.solve(lp.pattern(a), lp.sides(a))
        want = _fixed_milp_objective(p, bounds, x0, a, goal)
        assert (got is None) == (want is None)
        if got is not None:
            solved += 1
            u, obj = got
            assert obj == pytest.approx(want, rel=1e-7, abs=1e-9)
            # the LP's plan is a plan of the network in that region: its true cost is the LP's objective, or less
            # when a soft box's depth is measured from a nearer side than the one the pattern chose
            true = float(p.objective(net.rollout(x0, u), u, goal))
            if variant == "soft_keep_out":
                assert true <= obj + 1e-8
            else:
                assert true == pytest.approx(obj, rel=1e-6, abs=1e-8)
    assert solved >= 3


def test_descent_never_worsens_and_reports_the_true_cost(make_net):
    net = make_net([8, 8], nx=3, nu=2, seed=4, identity_frac=0.3)
    p = _problem(net, control_weight=0.05)
    x0, goal = np.array([0.2, -0.3, 0.1]), p.check_goal([0.6, 0.4, -0.2])
    bounds = symbolic(p, x0)
    rng = np.random.default_rng(2)
    improved = 0
    for _ in range(5):
        a = rng.uniform(-1, 1, size=(H, 2))
        start = float(p.objective(net.rollout(x0, a), a, goal))
        u, obj, n_lp = region_descent(p, bounds, x0, a, goal, max_lps=20)
        assert 1 <= n_lp <= 20
        assert obj <= start + 1e-9
        assert float(p.objective(net.rollout(x0, u), u, goal)) == pytest.approx(obj, rel=1e-6, abs=1e-8)
        assert (u >= -1).all() and (u <= 1).all()
        improved += obj < start - 1e-6
        again = region_descent(p, bounds, x0, a, goal, max_lps=20)
        assert np.array_equal(again[0], u) and again[1] == obj  # deterministic
    assert improved >= 3
    # more LPs never give a worse plan than fewer: the descent only moves downhill
    one = region_descent(p, bounds, x0, a, goal, max_lps=1)[1]
    assert obj <= one + 1e-12


def test_descent_with_the_pyomo_backend(make_net):
    pytest.importorskip("pyomo")
    net = make_net([8], nx=3, nu=2, seed=0)
    mpc = MIPMPC(net, 3, -np.ones(2), np.ones(2), backend="pyomo", solver="appsi_highs", polish_lps=5,
                 tighten_steps=0)
    plan = mpc.plan(np.zeros(3), np.full(3, 0.4), warm_start=np.zeros((3, 2)))
    assert plan.extras["polish_lps"] >= 1
    assert plan.objective <= plan.extras["polish_objective"] + 1e-6
