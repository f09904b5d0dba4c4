"""Neighbourhood search over activation patterns, HiGHS options and the time_limited mark (work limits only)."""

import numpy as np
import pytest

from controlkit.core.controller import Status
from controlkit.core.errors import ControlkitError
from controlkit.planning.milp import neighbourhood_search
from controlkit.planning.mip_mpc import MIPMPC

H = 3
X0, GOAL = np.zeros(3), np.array([0.5, -0.3, 0.2])
# deterministic: no time limit anywhere, node limits on every MILP, no automatic (time-budgeted) tightening
KW = dict(x_low=[-2] * 3, x_high=[2] * 3, mip_gap=1e-9, tighten_steps=0)


def _mpc(net, **kw):
    return MIPMPC(net, H, -0.5 * np.ones(2), 0.5 * np.ones(2), **KW, **kw)


def test_search_finds_the_optimum_that_the_descent_misses(make_net):
    net = make_net([6, 6], nx=3, nu=2, seed=7, scale=1.0)
    optimum = _mpc(net).plan(X0, GOAL)
    assert optimum.status is Status.OK
    start = np.zeros((H, 2))
    # the descent alone (one branch-and-bound node after it) stops in a region whose LP optimum is not the optimum
    local = _mpc(net, polish_lps=50, highs_options={"mip_max_nodes": 1}).plan(X0, GOAL, warm_start=start)
    assert local.extras["polish_objective"] > optimum.objective + 1e-3
    mpc = _mpc(net, polish_lps=50, search="window", search_slices=10, search_nodes=20,
               highs_options={"mip_max_nodes": 1})
    plan = mpc.plan(X0, GOAL, warm_start=start)
    assert plan.extras["search_improvements"] >= 1
    assert plan.extras["search_objective"] == pytest.approx(optimum.objective, rel=1e-6)
    assert plan.objective <= plan.extras["search_objective"] + 1e-7
    assert plan.extras["time_limited"] is False
    # the same inputs give the same plan (node limits, no clock)
    again = mpc.plan(X0, GOAL, warm_start=start)
    np.testing.assert_array_equal(again.actions, plan.actions)


def test_exact_head_over_the_whole_horizon_is_the_milp_and_a_short_head_is_never_worse(make_net):
    net = make_net([6, 6], nx=3, nu=2, seed=7, scale=1.0)
    optimum = _mpc(net).plan(X0, GOAL)
    start = np.zeros((H, 2))
    whole = _mpc(net, search="head", search_size=H, search_slices=3, search_nodes=None, branch_and_bound=False)
    assert whole.plan(X0, GOAL, warm_start=start).objective == pytest.approx(optimum.objective, rel=1e-6)
    head = _mpc(net, polish_lps=5, search="head", search_size=1, search_slices=3, search_nodes=50,
                branch_and_bound=False).plan(X0, GOAL, warm_start=start)
    assert optimum.objective - 1e-7 <= head.objective <= head.extras["search_start_objective"] + 1e-12
    assert head.extras["search_slices"] <= head.extras["search_improvements"] + 1  # stops at its first miss


@pytest.mark.parametrize("mode", ["window", "head", "switching", "hamming"])
def test_search_never_returns_worse_than_its_start(make_net, mode):
    net = make_net([5, 5], nx=3, nu=2, seed=9, scale=1.0)
    mpc = _mpc(net, search=mode, search_slices=2, search_nodes=3, search_size=1 if mode != "switching" else 4,
               highs_options={"mip_max_nodes": 1})
    rng = np.random.default_rng(0)
    p, goal = mpc.problem, mpc.problem.check_goal(GOAL)
    for _ in range(3):
        start = rng.uniform(-0.5, 0.5, size=(H, 2))
        start_obj = float(p.objective(net.rollout(X0, start), start, goal))
        plan = mpc.plan(X0, GOAL, warm_start=start)
        assert plan.extras["search_start_objective"] == pytest.approx(start_obj)
        assert plan.extras["search_objective"] <= start_obj + 1e-12
        assert plan.status in (Status.OK, Status.SUBOPTIMAL)
        assert plan.objective <= start_obj + 1e-7 * (1 + start_obj)
        # the returned plan is the network's own rollout of its actions
        np.testing.assert_allclose(plan.states, net.rollout(X0, plan.actions), atol=1e-6)


def test_search_leaves_an_infeasible_start_alone_and_restores_the_model(make_net):
    net = make_net([6, 6], nx=3, nu=2, seed=9, scale=1.0)
    mpc = MIPMPC(net, H, -0.5 * np.ones(2), 0.5 * np.ones(2), x_low=[-0.05] * 3, x_high=[0.05] * 3,
                 tighten_steps=0, mip_gap=1e-9)
    p, goal = mpc.problem, mpc.problem.check_goal(GOAL)
    bounds = mpc.bounds(X0)
    milp = mpc._compile(bounds, X0, goal, None)
    start = np.full((H, 2), 0.5)  # drives the state out of the tight box: no feasible incumbent, no cutoff
    assert p.violation(net.rollout(X0, start), hard_only=True) > 0
    ints = milp._int_cols
    before = milp.h.getCols(ints.size, ints)[3:5]
    found = neighbourhood_search(milp, X0, goal, bounds, start, mode="window", max_slices=3, slice_nodes=5)
    assert found.slices == 0 and found.improvements == 0
    np.testing.assert_array_equal(found.actions, start)
    after = milp.h.getCols(ints.size, ints)[3:5]
    for b, a in zip(before, after):
        np.testing.assert_array_equal(b, a)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"search": "tabu"}, "search"),
        ({"search": "window", "backend": "pyomo"}, "search"),
        ({"search_size": 0}, "search_size"),
        ({"search_slices": -1}, "search_slices"),
        ({"search_nodes": 0}, "search_nodes"),
        ({"search_time": 0.0}, "search_time"),
        ({"search_time": float("inf")}, "search_time"),
        ({"search_nodes": float("nan")}, "search_nodes"),
        ({"search_slices": 2.5}, "search_slices"),
        ({"highs_options": {"no_such_option": 1.0}}, "highs_options.no_such_option"),
        ({"highs_options": {"mip_heuristic_effort": 2.0}}, "highs_options.mip_heuristic_effort"),
        ({"highs_options": {"presolve": "sometimes"}}, "highs_options.presolve"),
        ({"highs_options": {"mip_max_nodes": 5}, "backend": "pyomo"}, "highs_options"),
        ({"branch_and_bound": "no", "polish_lps": 5}, "branch_and_bound"),
    ],
)
def test_search_and_highs_options_are_validated_by_name(small_net, kwargs, field):
    with pytest.raises(ControlkitError, match=field):
        MIPMPC(small_net, 2, -np.ones(2), np.ones(2), **kwargs)


def test_highs_options_reach_the_solver_and_time_limits_are_marked(small_net):
    kw = dict(tighten_steps=0, highs_options={"mip_heuristic_effort": 0.3, "mip_max_nodes": 7})
    mpc = MIPMPC(small_net, 2, -np.ones(2), np.ones(2), **kw)
    plan = mpc.plan(np.zeros(3), np.ones(3))
    assert plan.extras["time_limited"] is False
    h = mpc._milp.h
    assert h.getOptionValue("mip_max_nodes")[1] == 7
    assert h.getOptionValue("mip_heuristic_effort")[1] == pytest.approx(0.3)
    timed = MIPMPC(small_net, 2, -np.ones(2), np.ones(2), time_limit=5.0, **kw).plan(np.zeros(3), np.ones(3))
    assert timed.extras["time_limited"] is True


def test_without_branch_and_bound_the_plan_is_the_local_searchs(make_net):
    net = make_net([6, 6], nx=3, nu=2, seed=7, scale=1.0)
    start = np.zeros((H, 2))
    mpc = _mpc(net, polish_lps=50, search="window", search_slices=10, search_nodes=20, branch_and_bound=False)
    plan = mpc.plan(X0, GOAL, warm_start=start)
    assert plan.status is Status.SUBOPTIMAL and plan.gap is None
    assert plan.objective == pytest.approx(plan.extras["search_objective"])
    np.testing.assert_allclose(plan.states, net.rollout(X0, plan.actions))
    with pytest.raises(ControlkitError, match="branch_and_bound"):
        _mpc(net, branch_and_bound=False)  # nothing would find the plan


def test_a_solver_that_ends_without_a_plan_leaves_the_descents_plan(make_net, monkeypatch):
    """HiGHS can end "infeasible" (numerical trouble, presolve off) on a MILP whose start satisfies every
    constraint; the descended start is then the plan, never the solver's empty answer."""
    from controlkit.planning.milp.highs import HighsMILP, SolveResult

    net = make_net([6, 6], nx=3, nu=2, seed=7, scale=1.0)
    start = np.zeros((H, 2))
    mpc = _mpc(net, polish_lps=50, highs_options={"mip_max_nodes": 1})
    honest = mpc.plan(X0, GOAL, warm_start=start)

    def fails(self, start=None):
        nan = np.full((H, 2), np.nan)
        return SolveResult(Status.INFEASIBLE, nan, np.full((H + 1, 3), np.nan), float("nan"), None, 0.0, "Infeasible")

    monkeypatch.setattr(HighsMILP, "solve", fails)
    plan = mpc.plan(X0, GOAL, warm_start=start)
    assert plan.status is Status.SUBOPTIMAL and plan.gap is None
    assert plan.objective == pytest.approx(plan.extras["polish_objective"])
    assert plan.objective >= honest.objective - 1e-9  # the solver's own plan was at least as good
    assert "Infeasible; the start's plan kept" in plan.extras["message"]
    np.testing.assert_allclose(plan.states, net.rollout(X0, plan.actions))
    # without a start there is nothing to keep: the solver's status stands
    assert mpc.plan(X0, GOAL).status is Status.INFEASIBLE
