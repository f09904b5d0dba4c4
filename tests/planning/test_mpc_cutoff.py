"""Optimality-based LP tightening (objective cutoff) and the automatic tightening policy of MIP-MPC."""

import numpy as np
import pytest

from controlkit import ControlkitError, Status
from controlkit.planning.milp.bounds import preactivations, symbolic
from controlkit.planning.milp.tightening import tighten_lp
from controlkit.planning.mip_mpc import AUTO_MIN_BINARIES, MIPMPC


def _mpc(net, horizon, **kw):
    return MIPMPC(net, horizon, -np.ones(net.nu), np.ones(net.nu), x_low=[-3] * net.nx, x_high=[3] * net.nx,
                  control_weight=0.01, mip_gap=1e-7, **kw)


def test_cutoff_bounds_hold_for_every_plan_at_least_as_good(make_net):
    net = make_net([8], nx=4, nu=2, seed=0)
    mpc = _mpc(net, 4, tighten_steps=0)
    p, x0, goal = mpc.problem, np.zeros(4), np.full((4, 4), 0.5)
    best = mpc.plan(x0, goal)
    assert best.status is Status.OK
    # cutoff: a feasible plan somewhat worse than the optimum, so that many sampled plans lie below it
    rng = np.random.default_rng(0)
    near = np.clip(best.actions + rng.normal(0, 0.3, size=(4000, 4, 2)), -1, 1)
    states = np.stack([net.rollout(x0, a) for a in near])
    costs = p.cost(states, near, goal)
    cutoff = float(np.quantile(costs, 0.25))
    start = symbolic(p, x0)
    plain, _ = tighten_lp(p, x0, symbolic(p, x0))
    cut, n_lp = tighten_lp(p, x0, symbolic(p, x0), goal=goal, cutoff=cutoff)
    assert n_lp > 0
    assert cut.count(p)["binaries"] <= plain.count(p)["binaries"] < start.count(p)["binaries"]
    width = [float(np.subtract(*b.layer(0)[::-1]).sum()) for b in (start, plain, cut)]
    assert width[2] < width[1] < width[0]  # the cutoff row shrinks the relaxation further
    good = (costs <= cutoff) & (p.violation(states) <= 0)
    assert good.sum() > 500
    for k, a in enumerate(preactivations(p, states[good], near[good])):
        lo, hi = cut.layer(k)
        assert (a >= lo - 1e-9).all() and (a <= hi + 1e-9).all()
    # the optimum is at least as good as any cutoff, so it stays feasible: same objective with these bounds
    assert (best.states >= cut.x_lo - 1e-9).all() and (best.states <= cut.x_hi + 1e-9).all()


def test_auto_tightening_keeps_the_optimum_and_removes_binaries(make_net):
    net = make_net([8], nx=4, nu=2, seed=0)
    x0, goal = np.zeros(4), np.full(4, 0.5)
    plain = _mpc(net, 5, tighten_steps=0).plan(x0, goal)
    auto = _mpc(net, 5).plan(x0, goal)  # the default policy
    assert plain.status is Status.OK and auto.status is Status.OK
    assert plain.extras["binaries"] >= AUTO_MIN_BINARIES
    assert auto.extras["tighten_lps"] > 0 and np.isfinite(auto.extras["tighten_cutoff"])
    assert auto.extras["warm_start"]  # the plan found first is the MIP start
    assert auto.extras["binaries"] < plain.extras["binaries"]
    assert auto.objective == pytest.approx(plain.objective, rel=1e-6, abs=1e-8)
    np.testing.assert_allclose(auto.states, net.rollout(x0, auto.actions), atol=1e-5)


@pytest.mark.parametrize("kw", [
    {"time_limit": 0.2},  # a control-loop time limit: a quarter of it buys too few LPs
    {"backend": "pyomo"},  # the plan found first comes from the HiGHS region descent
    {"horizon": 1},  # a handful of binaries: branch and bound is cheap anyway
])
def test_auto_tightening_stays_off_where_it_does_not_pay(make_net, kw):
    net = make_net([8], nx=4, nu=2, seed=0)
    horizon = kw.pop("horizon", 5)
    # the MIP start is an incumbent, so the plan has an answer however little of the time limit a busy machine
    # leaves to branch and bound
    plan = _mpc(net, horizon, **kw).plan(np.zeros(4), np.full(4, 0.5), warm_start=np.zeros((horizon, 2)))
    assert plan.status in (Status.OK, Status.SUBOPTIMAL)
    assert "tighten_lps" not in plan.extras


def test_auto_tightening_in_receding_horizon(make_net):
    net = make_net([8], nx=4, nu=2, seed=0)
    mpc = _mpc(net, 5, goal=np.full(4, 0.5))
    x = np.zeros(4)
    for _ in range(3):
        u = mpc.act(x)
        assert mpc.last_step.fallback is None and mpc.last_step.status is Status.OK
        assert mpc.last_plan.extras["tighten_lps"] > 0
        x = net.step(x, u)


def test_bad_tighten_steps(small_net):
    with pytest.raises(ControlkitError, match="tighten_steps"):
        MIPMPC(small_net, 3, [-1, -1], [1, 1], tighten_steps="sometimes")


def test_auto_tightening_leaves_the_time_limit_as_set(make_net):
    """Its LPs come out of the solver's limit for one plan; the next plan starts from the limit as set again."""
    net = make_net([8], nx=4, nu=2, seed=0)
    mpc = _mpc(net, 5, time_limit=30.0)
    plan = mpc.plan(np.zeros(4), np.full(4, 0.5))
    assert plan.status is Status.OK and plan.extras["tighten_lps"] > 0
    assert mpc._milp.h.getOptionValue("time_limit")[1] == 30.0


def test_lp_models_keep_their_time_limit_over_many_receding_steps(make_net):
    """A model without binaries is an LP; HiGHS checks an LP's time limit against the instance's cumulative run
    time, so without care every step after the first ``time_limit`` seconds in all would stop at once. Each LP
    run must get the limit counted from its own start: checked on the option values HiGHS is given (what a
    solve's speed cannot change), with a limit no step of this small LP comes near."""
    net = make_net([8], nx=4, nu=2, seed=0)
    net.relu_masks[0][:] = False  # identity neurons only: no binaries
    limit = 5.0
    mpc = MIPMPC(net, 5, -np.ones(2), np.ones(2), time_limit=limit, goal=np.full(4, 0.5))
    x = np.zeros(4)
    x = net.step(x, mpc.act(x))
    h = mpc._milp.h
    given = []  # (run clock when the limit was set, limit) for every time_limit HiGHS is given
    set_option = h.setOptionValue

    def spy(name, value):
        if name == "time_limit":
            given.append((h.getRunTime(), value))
        return set_option(name, value)

    h.setOptionValue = spy
    for _ in range(20):
        u = mpc.act(x)
        assert mpc.last_step.status is Status.OK and mpc.last_step.fallback is None
        x = net.step(x, u)
    assert mpc._milp.h is h and mpc._milp.n_binaries == 0 and h.getRunTime() > 0
    # each run's limit is its start on the run clock plus the time limit; the limit itself is restored after it
    runs = given[0::2]
    assert len(runs) == 20 and [value for _, value in given[1::2]] == [limit] * 20
    assert all(value == pytest.approx(clock + limit, abs=1e-9) for clock, value in runs)
    assert runs[-1][0] > runs[0][0]  # the run clock moved on, and the limits with it
