"""Symbolic (zonotope) bounds and LP tightening: sound, never looser than intervals, same optimum."""

import numpy as np
import pytest

from controlkit import ControlkitError, Status
from controlkit.models.network import CompactNetwork
from controlkit.planning import MIPMPC
from controlkit.planning.milp.bounds import ibp, preactivations, symbolic
from controlkit.planning.milp.tightening import tighten_lp


def _problem(net, horizon, **kw):
    return MIPMPC(net, horizon, -np.ones(net.nu), np.ones(net.nu), **kw).problem


def _stacked(bounds, k, horizon):
    return (np.stack([bounds.pre_lo[t][k] for t in range(horizon)]),
            np.stack([bounds.pre_hi[t][k] for t in range(horizon)]))


def _assert_sound(problem, x0, bounds, n=3000, seed=0):
    """No sampled action sequence (box corners included) leaves a pre-activation or state bound."""
    net, H = problem.net, problem.horizon
    rng = np.random.default_rng(seed)
    actions = rng.uniform(problem.u_low, problem.u_high, size=(n, H, net.nu))
    actions[: n // 10] = np.where(rng.random((n // 10, H, net.nu)) < 0.5, problem.u_low, problem.u_high)
    states = np.stack([net.rollout(x0, a) for a in actions])
    feasible = ((states[:, 1:] >= problem.x_low) & (states[:, 1:] <= problem.x_high)).all(axis=(1, 2))
    assert feasible.sum() > n // 10  # the check must see many feasible trajectories
    states, actions = states[feasible], actions[feasible]
    for k, a in enumerate(preactivations(problem, states, actions)):
        lo, hi = _stacked(bounds, k, H)
        assert (a >= lo - 1e-9).all() and (a <= hi + 1e-9).all()
    assert (states >= bounds.x_lo - 1e-9).all() and (states <= bounds.x_hi + 1e-9).all()


@pytest.mark.parametrize("residual", [True, False])
def test_symbolic_bounds_are_sound_and_never_looser_than_intervals(make_net, residual):
    net = make_net([7, 6], nx=3, nu=2, seed=11, identity_frac=0.3, residual=residual, scale=0.8)
    # finite state bounds that cut some trajectories: the bounds only need to hold on the feasible ones
    problem = _problem(net, 6, x_low=[-2.0] * 3, x_high=[2.0] * 3)
    x0 = np.array([0.2, -0.3, 0.1])
    loose, tight = ibp(problem, x0), symbolic(problem, x0, max_noise=4)  # small max_noise: reduction runs too
    _assert_sound(problem, x0, tight)
    for k in range(2):
        (l0, h0), (l1, h1) = _stacked(loose, k, 6), _stacked(tight, k, 6)
        assert (l1 >= l0 - 1e-12).all() and (h1 <= h0 + 1e-12).all()  # equal up to rounding where not tighter
    assert (tight.x_lo >= loose.x_lo - 1e-12).all() and (tight.x_hi <= loose.x_hi + 1e-12).all()
    assert tight.count(problem)["binaries"] <= loose.count(problem)["binaries"]


def _correlated_net() -> CompactNetwork:
    """Two states moved by the same action; ReLUs read their difference, which never changes from x0 = 0.

    Interval bounds treat the two states as independent, so ``x_0 - x_1`` looks like it spans ``[-2t, 2t]`` and
    both ReLUs seem to switch; the symbolic forms keep ``x_0 - x_1 = 0`` exactly, so they are stable.
    """
    w1 = np.array([[0.0, 0.0, 1.0],     # identity neuron: u
                   [1.0, -1.0, 0.0],    # relu(x0 - x1 + 0.3): always active
                   [1.0, -1.0, 0.0]])   # relu(x0 - x1 - 0.3): always inactive
    b1 = np.array([0.0, 0.3, -0.3])
    w2 = np.array([[1.0, 0.1, 0.1], [1.0, 0.1, 0.1]])
    return CompactNetwork([w1, w2], [b1, np.zeros(2)], [np.array([False, True, True])], nx=2, nu=1)


def test_symbolic_bounds_keep_correlations_and_remove_binaries():
    net = _correlated_net()
    problem = _problem(net, 5)
    x0 = np.zeros(2)
    assert ibp(problem, x0).count(problem)["binaries"] == 8  # every step after the first: both ReLUs
    assert symbolic(problem, x0).count(problem)["binaries"] == 0
    kw = dict(mip_gap=1e-9, control_weight=0.1)
    goal = np.array([2.0, 1.0])
    a = MIPMPC(net, 5, [-1.0], [1.0], bound_method="interval", **kw).plan(x0, goal)
    b = MIPMPC(net, 5, [-1.0], [1.0], **kw).plan(x0, goal)
    assert a.status is Status.OK and b.status is Status.OK
    assert b.extras["binaries"] == 0 and a.extras["binaries"] == 8
    assert b.objective == pytest.approx(a.objective, rel=1e-7, abs=1e-9)


@pytest.mark.parametrize("seed", [0, 1])
def test_symbolic_bounds_keep_the_optimum(make_net, seed):
    net = make_net([8], nx=4, nu=2, seed=seed)
    x0, goal = np.zeros(4), np.full(4, 0.5)
    kw = dict(mip_gap=1e-7, control_weight=0.01)
    a = MIPMPC(net, 4, -np.ones(2), np.ones(2), bound_method="interval", **kw).plan(x0, goal)
    b = MIPMPC(net, 4, -np.ones(2), np.ones(2), **kw).plan(x0, goal)
    assert a.status is Status.OK and b.status is Status.OK
    assert b.extras["binaries"] <= a.extras["binaries"]
    assert b.objective == pytest.approx(a.objective, rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("window", [None, 1])
def test_lp_tightening_from_symbolic_bounds_is_sound_and_tighter(make_net, window):
    net = make_net([6, 6], nx=3, nu=2, seed=1, identity_frac=0.3)
    problem = _problem(net, 4, x_low=[-3] * 3, x_high=[3] * 3)
    x0 = np.zeros(3)
    start = symbolic(problem, x0)
    tight, n_lp = tighten_lp(problem, x0, symbolic(problem, x0), window=window)
    assert n_lp > 0
    for k in range(2):
        (l0, h0), (l1, h1) = _stacked(start, k, 4), _stacked(tight, k, 4)
        assert (l1 >= l0).all() and (h1 <= h0).all()
    assert tight.count(problem)["binaries"] < start.count(problem)["binaries"]
    _assert_sound(problem, x0, tight)


def test_lp_tightening_stops_at_its_time_budget(make_net):
    net = make_net([8], nx=4, nu=2, seed=0)
    problem = _problem(net, 3)
    x0 = np.zeros(4)
    _, n_full = tighten_lp(problem, x0, symbolic(problem, x0))
    budget, n_budget = tighten_lp(problem, x0, symbolic(problem, x0), time_budget=1e-9)
    assert n_budget == 0 < n_full  # building the first relaxation already spends the budget
    _assert_sound(problem, x0, budget)
    plan = MIPMPC(net, 3, -np.ones(2), np.ones(2), tighten_steps=3, tighten_time=1e-9).plan(x0, np.full(4, 0.3))
    assert plan.status is Status.OK


@pytest.mark.parametrize("kwargs, field", [
    ({"bound_method": "crown"}, "bound_method"),
    ({"tighten_time": 0.0}, "tighten_time"),
    ({"tighten_window": 0}, "tighten_window"),
])
def test_bad_bound_arguments(small_net, kwargs, field):
    with pytest.raises(ControlkitError, match=field):
        MIPMPC(small_net, 3, [-1, -1], [1, 1], **kwargs)


def test_windowed_lp_tightening_keeps_the_optimum(make_net):
    net = make_net([6, 6], nx=3, nu=2, seed=1, identity_frac=0.3)
    x0, goal = np.zeros(3), np.array([0.5, -0.5, 0.5])
    kw = dict(mip_gap=1e-7, control_weight=0.01, x_low=[-3] * 3, x_high=[3] * 3)
    plain = MIPMPC(net, 4, -np.ones(2), np.ones(2), tighten_steps=0, **kw).plan(x0, goal)
    windowed = MIPMPC(net, 4, -np.ones(2), np.ones(2), tighten_steps=4, tighten_window=1, **kw).plan(x0, goal)
    assert plain.status is Status.OK and windowed.status is Status.OK
    assert windowed.extras["binaries"] < plain.extras["binaries"]
    assert windowed.objective == pytest.approx(plain.objective, rel=1e-6, abs=1e-8)
