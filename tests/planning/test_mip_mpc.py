"""MIP-MPC correctness on small random networks with real HiGHS solves."""

import itertools

import numpy as np
import pytest
import torch
from scipy.optimize import linprog

from controlkit import ControlkitError, Status
from controlkit.planning import MIPMPC, CEMPlanner, KeepOut
from controlkit.planning.milp.bounds import ibp, preactivations
from controlkit.planning.milp.highs import HighsMILP
from controlkit.planning.milp.tightening import tighten_lp


def _mpc(net, horizon=3, **kw):
    return MIPMPC(net, horizon, -np.ones(net.nu), np.ones(net.nu), **kw)


def test_plan_states_match_torch_rollout(small_net):
    mpc = _mpc(small_net, horizon=4)
    x0, goal = np.array([0.1, -0.2, 0.3]), np.array([0.5, 0.5, -0.5])
    plan = mpc.plan(x0, goal)
    assert plan.status is Status.OK
    f = small_net.to_torch()
    x = torch.as_tensor(x0)
    states = [x]
    with torch.no_grad():
        for u in torch.as_tensor(plan.actions):
            x = x + f(torch.cat([x, u]))
            states.append(x)
    np.testing.assert_allclose(plan.states, torch.stack(states).numpy(), atol=1e-5)
    assert plan.objective == pytest.approx(mpc.problem.cost(plan.states, plan.actions, mpc.problem.check_goal(goal)))
    assert plan.extras["binaries"] + plan.extras["stable_active"] + plan.extras["stable_inactive"] == 4 * small_net.n_relu


def test_objective_beats_random_shooting_and_cem(make_net):
    net = make_net([8], nx=3, nu=2, seed=3)
    mpc = _mpc(net, horizon=3, control_weight=0.1)
    x0, goal = np.zeros(3), np.array([0.4, -0.3, 0.2])
    plan = mpc.plan(x0, goal)
    assert plan.status is Status.OK
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, size=(10_000, 3, 2))
    states = np.stack([net.rollout(x0, a) for a in actions])
    best_random = mpc.problem.cost(states, actions, mpc.problem.check_goal(goal)).min()
    cem = CEMPlanner(net, 3, -np.ones(2), np.ones(2), control_weight=0.1, seed=0).plan(x0, goal)
    assert plan.objective <= best_random + 1e-6
    assert plan.objective <= cem.objective + 1e-6


def _brute_force(net, x0, goal, horizon):
    """Global optimum by enumerating every activation pattern and solving the LP each one leaves (scipy)."""
    nx, nu = net.nx, net.nu
    (w1, w2), (b1, b2) = net.weights, net.biases
    best = np.inf
    n_u = horizon * nu
    for pattern in itertools.product([0.0, 1.0], repeat=horizon * w1.shape[0]):
        d = np.asarray(pattern).reshape(horizon, -1)
        # state x_t = M u + c as an affine function of all actions; collect sign constraints on pre-activations
        m, c = np.zeros((nx, n_u)), np.asarray(x0, float)
        a_ub, b_ub, rows_x = [], [], []
        for t in range(horizon):
            sel = np.zeros((nu, n_u))
            sel[:, t * nu:(t + 1) * nu] = np.eye(nu)
            pm = w1[:, :nx] @ m + w1[:, nx:] @ sel
            pc = w1[:, :nx] @ c + b1
            sign = np.where(d[t] > 0, -1.0, 1.0)  # active: pre >= 0 ; inactive: pre <= 0
            a_ub.append(sign[:, None] * pm)
            b_ub.append(-sign * pc)
            m, c = m + w2 @ (d[t][:, None] * pm), c + w2 @ (d[t] * pc) + b2
            rows_x.append((m.copy(), c.copy()))
        # variables: u, then epigraph e (horizon * nx); |x - g| <= e
        n_e = horizon * nx
        a_eq_rows = []
        for t, (mt, ct) in enumerate(rows_x):
            e = np.zeros((nx, n_e))
            e[:, t * nx:(t + 1) * nx] = -np.eye(nx)
            a_eq_rows.append((np.hstack([mt, e]), goal - ct))
            a_eq_rows.append((np.hstack([-mt, e]), ct - goal))
        a_ub = np.vstack([np.hstack([a, np.zeros((a.shape[0], n_e))]) for a in a_ub] + [r[0] for r in a_eq_rows])
        b_ub = np.concatenate(b_ub + [r[1] for r in a_eq_rows])
        cost = np.concatenate([np.zeros(n_u), np.ones(n_e)])
        res = linprog(cost, A_ub=a_ub, b_ub=b_ub, bounds=[(-1, 1)] * n_u + [(0, None)] * n_e, method="highs")
        if res.status == 0:
            best = min(best, res.fun)
    return best


def test_objective_equals_brute_force_enumeration(make_net):
    net = make_net([3], nx=2, nu=1, seed=1, scale=1.5)
    x0, goal = np.array([0.2, -0.1]), np.array([1.0, 0.5])
    plan = _mpc(net, horizon=3, mip_gap=0.0).plan(x0, goal)
    assert plan.status is Status.OK
    assert plan.extras["binaries"] >= 3  # some neurons really switch, so the enumeration is not trivial
    assert plan.objective == pytest.approx(_brute_force(net, x0, goal, 3), abs=1e-6)


@pytest.mark.parametrize("tighten", [False, True])
def test_bounds_are_sound_on_sampled_trajectories(small_net, tighten):
    mpc = _mpc(small_net, horizon=4)
    x0 = np.array([0.3, 0.0, -0.2])
    bounds = ibp(mpc.problem, x0)
    if tighten:
        tight, n_lp = tighten_lp(mpc.problem, x0, ibp(mpc.problem, x0))
        assert n_lp > 0
        for t in range(4):
            for k in range(2):
                assert (tight.pre_lo[t][k] >= bounds.pre_lo[t][k] - 1e-12).all()
                assert (tight.pre_hi[t][k] <= bounds.pre_hi[t][k] + 1e-12).all()
        assert tight.count(mpc.problem)["binaries"] <= bounds.count(mpc.problem)["binaries"]
        bounds = tight
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, size=(5000, 4, 2))
    actions[:100] = rng.choice([-1.0, 1.0], size=(100, 4, 2))  # box corners, where IBP is tightest
    states = np.stack([small_net.rollout(x0, a) for a in actions])
    pre = preactivations(mpc.problem, states, actions)
    for k, a in enumerate(pre):
        lo = np.stack([bounds.pre_lo[t][k] for t in range(4)])
        hi = np.stack([bounds.pre_hi[t][k] for t in range(4)])
        assert (a >= lo - 1e-9).all() and (a <= hi + 1e-9).all()
    assert (states >= bounds.x_lo - 1e-9).all() and (states <= bounds.x_hi + 1e-9).all()


def test_stable_neurons_get_no_binary(make_net):
    net = make_net([10], nx=2, nu=1, seed=4)
    net.biases[0][:3] = 50.0  # always active
    net.biases[0][3:6] = -50.0  # always inactive
    net.relu_masks[0][6:8] = False  # identity
    mpc = _mpc(net, horizon=2)
    plan = mpc.plan(np.zeros(2), np.ones(2))
    assert plan.extras["stable_active"] >= 6 and plan.extras["stable_inactive"] >= 6
    assert plan.extras["identity"] == 4
    assert plan.extras["model_binaries"] == plan.extras["binaries"] <= 2 * 2


def test_complete_mip_start_satisfies_every_constraint(small_net):
    mpc = _mpc(small_net, horizon=4, control_weight=0.2, x_low=[-5] * 3, x_high=[5] * 3,
               keep_out=[KeepOut((0, 1), (2.0, 2.0), (3.0, 3.0))])
    x0, goal = np.array([0.1, 0.2, 0.3]), mpc.problem.check_goal(np.zeros(3))
    bounds = ibp(mpc.problem, x0)
    milp = HighsMILP(mpc.problem, bounds, x0, goal)
    start = milp.start_vector(x0, np.random.default_rng(0).uniform(-1, 1, (4, 2)), goal, bounds)
    lp = milp.h.getLp()
    a = np.zeros((lp.num_row_, lp.num_col_))
    cols = lp.a_matrix_
    for j in range(lp.num_col_):
        for p in range(cols.start_[j], cols.start_[j + 1]):
            a[cols.index_[p], j] = cols.value_[p]
    rows = a @ start
    assert (rows >= np.asarray(lp.row_lower_) - 1e-8).all() and (rows <= np.asarray(lp.row_upper_) + 1e-8).all()
    assert (start >= np.asarray(lp.col_lower_) - 1e-8).all() and (start <= np.asarray(lp.col_upper_) + 1e-8).all()


def test_warm_started_receding_horizon_matches_cold_solves(small_net):
    goal = np.array([0.5, -0.5, 0.2])
    mpc = _mpc(small_net, horizon=4, goal=goal)
    x = np.array([0.0, 0.1, -0.1])
    rebuilt = []
    for _ in range(4):
        u = mpc.act(x)
        assert mpc.last_step.status is Status.OK and mpc.last_step.fallback is None
        assert mpc.last_plan.extras["warm_start"]
        cold = _mpc(small_net, horizon=4).plan(x, goal)
        assert mpc.last_plan.objective == pytest.approx(cold.objective, rel=2e-4, abs=1e-6)
        rebuilt.append(mpc.last_plan.extras["rebuilt"])
        x = small_net.step(x, u)
    assert rebuilt[0] and not all(rebuilt[1:])  # built once, then (at least sometimes) updated in place


def test_in_place_update_equals_fresh_build(small_net):
    mpc = _mpc(small_net, horizon=3, x_low=[-2] * 3, x_high=[2] * 3)
    goal = np.array([0.3, 0.3, 0.3])
    mpc.plan(np.zeros(3), goal)
    milp = mpc._milp
    x1 = np.array([0.05, -0.05, 0.0])
    updated = mpc.plan(x1, goal)
    fresh = _mpc(small_net, horizon=3, x_low=[-2] * 3, x_high=[2] * 3).plan(x1, goal)
    if not updated.extras["rebuilt"]:
        assert mpc._milp is milp
    assert updated.objective == pytest.approx(fresh.objective, rel=2e-4, abs=1e-6)


def test_time_limit_returns_incumbent_or_timeout(make_net):
    net = make_net([24, 24], nx=4, nu=2, seed=5, scale=1.0)
    # a limit no machine meets (this MILP takes minutes to prove), so the outcome cannot depend on the machine
    mpc = MIPMPC(net, 8, -np.ones(2), np.ones(2), time_limit=1e-6)
    warm = np.zeros((8, 2))
    plan = mpc.plan(np.zeros(4), np.ones(4), warm_start=warm)
    assert plan.status is Status.SUBOPTIMAL  # the MIP start is an incumbent, so a time-out still has an answer
    assert plan.extras["message"] == "Time limit reached"
    assert plan.gap > 1e-4
    states = net.rollout(np.zeros(4), warm)
    goal = mpc.problem.check_goal(np.ones(4))
    assert plan.objective <= mpc.problem.cost(states, warm, goal) + 1e-6


def test_infeasible_bounds_and_fallbacks(small_net):
    goal = np.zeros(3)
    mpc = _mpc(small_net, horizon=3, goal=goal, x_low=[-1] * 3, x_high=[1] * 3, max_fallback=2,
               safe_action=[0.5, -0.5])
    x = np.array([0.1, 0.1, 0.1])
    mpc.act(x)
    assert mpc.last_step.fallback is None
    plan = mpc.last_plan
    outside = np.array([30.0, 30.0, 30.0])  # no action brings x_1 back inside the state box
    assert mpc.plan(outside, goal).status is Status.INFEASIBLE
    seen = []
    for _ in range(4):
        u = mpc.act(outside)
        seen.append((mpc.last_step.fallback, mpc.last_step.status))
        if mpc.last_step.fallback == "shifted_plan":
            assert np.array_equal(u, plan.actions[len(seen)])
        else:
            assert np.array_equal(u, [0.5, -0.5])
    assert [s[0] for s in seen] == ["shifted_plan", "shifted_plan", "safe_action", "safe_action"]
    assert all(s[1] is Status.INFEASIBLE for s in seen)
    # a feasible state again: back to normal planning
    mpc.act(x)
    assert mpc.last_step.fallback is None and mpc.last_step.status is Status.OK


def test_act_without_goal_and_with_nan_obs_falls_back(small_net):
    mpc = _mpc(small_net)
    mpc.act(np.zeros(3))
    assert mpc.last_step.status is Status.ERROR and "goal" in mpc.last_step.message
    mpc.set_goal(np.ones(3))
    u = mpc.act(np.array([np.nan, 0, 0]))
    assert mpc.last_step.fallback == "safe_action" and "x0" in mpc.last_step.message
    assert np.array_equal(u, np.zeros(2))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"u_low": [-1.0], "u_high": [1.0, 1.0]}, "u_low"),
        ({"u_low": [1.0, 1.0], "u_high": [-1.0, 1.0]}, "u_low/u_high"),
        ({"x_low": [0.0, 0.0]}, "x_low"),
        ({"backend": "cplex-direct"}, "backend"),
        ({"backend": "pyomo", "solver": "no_such_solver"}, "solver"),
        ({"horizon": 0}, "horizon"),
        ({"state_weights": [1.0, -1.0, 1.0]}, "state_weights"),
        ({"time_limit": -1.0}, "time_limit"),
        ({"polish_lps": -1}, "polish_lps"),
        ({"polish_time": 0.0}, "polish_time"),
        ({"keep_out": [KeepOut((0, 1), (0.0, 0.0), (1.0, 1.0))]}, "keep_out"),
    ],
)
def test_bad_constructor_arguments(small_net, kwargs, field):
    args = {"horizon": 3, "u_low": [-1.0, -1.0], "u_high": [1.0, 1.0], **kwargs}
    with pytest.raises(ControlkitError, match=field):
        MIPMPC(small_net, **args)


def test_bad_plan_inputs(small_net):
    mpc = _mpc(small_net)
    with pytest.raises(ControlkitError, match="x0"):
        mpc.plan(np.array([np.nan, 0, 0]), np.zeros(3))
    with pytest.raises(ControlkitError, match="goal"):
        mpc.plan(np.zeros(3), np.array([0, np.nan, 0]))
    with pytest.raises(ControlkitError, match="x0"):
        mpc.plan(np.zeros(4), np.zeros(3))
    with pytest.raises(ControlkitError, match="goal"):
        mpc.plan(np.zeros(3), np.zeros((2, 3)))
    with pytest.raises(ControlkitError, match="warm_start"):
        mpc.plan(np.zeros(3), np.zeros(3), warm_start=np.zeros((2, 2)))


def test_torch_sequential_input_and_unsupported_layers():
    seq = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    mpc = MIPMPC(seq, 2, [-1.0], [1.0], nx=2, nu=1)
    assert mpc.plan(np.zeros(2), np.ones(2)).status is Status.OK
    with pytest.raises(ControlkitError, match="nx"):
        MIPMPC(seq, 2, [-1.0], [1.0])
    bad = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    with pytest.raises(ControlkitError, match="Tanh"):
        MIPMPC(bad, 2, [-1.0], [1.0], nx=2, nu=1)


def test_lp_tightening_keeps_the_optimum_with_fewer_binaries(make_net):
    net = make_net([8], nx=4, nu=2, seed=0)
    x0, goal = np.zeros(4), np.full(4, 0.5)
    loose = _mpc(net, horizon=4, mip_gap=1e-6, tighten_steps=0).plan(x0, goal)
    tight = _mpc(net, horizon=4, mip_gap=1e-6, tighten_steps=4).plan(x0, goal)
    assert tight.status is Status.OK and loose.status is Status.OK
    assert tight.objective == pytest.approx(loose.objective, rel=1e-5, abs=1e-7)
    assert tight.extras["binaries"] < loose.extras["binaries"]


def test_widened_structure_serves_both_states_in_place(small_net):
    goal = np.array([0.3, -0.3, 0.3])
    a, b = np.array([0.0, 0.0, 0.0]), np.array([3.0, -3.0, 2.0])

    def make():  # a small action box leaves many neurons stable, and which ones depends on x0
        return MIPMPC(small_net, 2, [-0.1, -0.1], [0.1, 0.1], mip_gap=1e-6)

    mpc = make()
    first = mpc.plan(a, goal)
    assert first.extras["stable_active"] + first.extras["stable_inactive"] > 0
    second = mpc.plan(b, goal)
    assert second.extras["rebuilt"]  # stability differs far away: the structure had to widen
    third = mpc.plan(a, goal)
    assert not third.extras["rebuilt"]  # the widened structure fits `a` again: updated in place
    assert third.extras["model_binaries"] > third.extras["binaries"]  # some binaries are fixed by their bounds
    fresh = make().plan(a, goal)
    assert third.objective == pytest.approx(fresh.objective, rel=1e-6, abs=1e-7)
    np.testing.assert_allclose(third.states, small_net.rollout(a, third.actions), atol=1e-5)


def test_planner_pickles_and_plans_after_unpickling(small_net):
    import pickle

    mpc = _mpc(small_net, goal=np.zeros(3))
    mpc.act(np.ones(3) * 0.1)
    clone = pickle.loads(pickle.dumps(mpc))
    assert clone.plan(np.zeros(3), np.ones(3)).objective == pytest.approx(mpc.plan(np.zeros(3), np.ones(3)).objective)


def test_region_descent_improves_the_start_and_leaves_the_model_intact(make_net):
    net = make_net([8], nx=4, nu=2, seed=7, scale=1.0)
    x0, goal, H = np.zeros(4), np.full(4, 0.8), 4
    zeros = np.zeros((H, 2))
    plain = MIPMPC(net, H, -np.ones(2), np.ones(2))
    polished = MIPMPC(net, H, -np.ones(2), np.ones(2), polish_lps=50, time_limit=0.001)
    p = polished.plan(x0, goal, warm_start=zeros)
    start_cost = polished.problem.cost(net.rollout(x0, zeros), zeros, polished.problem.check_goal(goal))
    assert p.extras["polish_lps"] >= 2  # left the start's region at least once
    assert p.extras["polish_objective"] < start_cost - 1e-6
    assert p.objective <= p.extras["polish_objective"] + 1e-6  # the MILP starts from the polished plan
    np.testing.assert_allclose(p.states, net.rollout(x0, p.actions), atol=1e-6)  # a real plan of the network
    # After the descent the model is the full MILP again: without a time limit it proves the same optimum.
    polished._milp.set_time_limit(None)
    again = polished._milp.solve()
    assert again.objective == pytest.approx(plain.plan(x0, goal).objective, rel=2e-4, abs=1e-6)


def test_region_descent_budget_is_per_plan_not_cumulative(make_net):
    # HiGHS compares an LP's time limit with the instance's whole run time; once earlier plans have used more
    # than polish_time in total, a budget set as-is would stop every descent after one LP.
    net = make_net([8], nx=4, nu=2, seed=7, scale=1.0)
    x0, goal, H = np.zeros(4), np.full(4, 0.8), 4
    mpc = MIPMPC(net, H, -np.ones(2), np.ones(2), polish_lps=50, polish_time=0.5, time_limit=2.0,
                 tighten_steps=0)
    first = mpc.plan(x0, goal, warm_start=np.zeros((H, 2)))
    mpc._milp.set_time_limit(None)
    mpc._milp.solve()  # proves the optimum: the instance's run time grows
    while mpc._milp.h.getRunTime() < 0.5:  # push the cumulative clock past the polish budget
        mpc._milp.solve()
    again = mpc.plan(x0, goal, warm_start=np.zeros((H, 2)))
    assert again.extras["polish_lps"] == first.extras["polish_lps"] >= 2
