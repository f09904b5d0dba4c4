"""The ReLU-stability fine-tune: the penalty lowers the unstable binaries the planner sees; the bounds are sound."""

import numpy as np
import pytest
import torch

from controlkit.core.errors import ControlkitError
from controlkit.models.data import TransitionData
from controlkit.models.network import CompactNetwork
from controlkit.models.stability import (
    StabilitySettings,
    _torch_layers,
    instability,
    phantom_motion,
    relu_importance,
    rollout_error,
    sampled_switching,
    stabilise,
    unstable_count,
    zonotope_preactivations,
)
from controlkit.planning.milp.bounds import symbolic
from controlkit.planning.mip_mpc import MIPMPC


def _tiny(seed=0):
    """A residual 2-state, 1-action network with 8 ReLUs, and transitions of a damped linear system."""
    rng = np.random.default_rng(seed)
    w1, b1 = rng.normal(0, 1.0, (8, 3)), rng.normal(0, 0.1, 8)
    w2, b2 = rng.normal(0, 0.1, (2, 8)), np.zeros(2)
    net = CompactNetwork([w1, w2], [b1, b2], [np.ones(8, bool)], 2, 1, residual=True)
    x = np.zeros((40, 11, 2))
    x[:, 0] = rng.uniform(-1, 1, (40, 2))
    u = rng.uniform(-0.2, 0.2, (40, 10, 1))
    for t in range(10):
        x[:, t + 1] = 0.9 * x[:, t] + np.concatenate([0.1 * x[:, t, 1:], u[:, t]], axis=1)
    return net, TransitionData(x, u, np.full(40, 10))


def _planner_binaries(net, starts, horizon=4):
    mip = MIPMPC(net, horizon, [-0.2], [0.2])
    return sum(symbolic(mip.problem, x).count(mip.problem)["binaries"] for x in starts)


def test_zonotope_bounds_match_the_planners_and_contain_sampled_preactivations():
    net, data = _tiny()
    starts = data.states[:5, 0]
    w, b, m = _torch_layers(net)
    bounds = zonotope_preactivations(w, b, m, torch.tensor(starts), np.array([-0.2]), np.array([0.2]), 4)
    # never tighter than the planner's bounds (which also intersect with interval bounds): as many or more unstable
    assert int(unstable_count(bounds).sum()) >= _planner_binaries(net, starts)
    rng = np.random.default_rng(1)
    for i, x0 in enumerate(starts):
        for _ in range(50):
            x = x0.copy()
            for t in range(4):
                a = rng.uniform(-0.2, 0.2, 1)
                pre = net.weights[0] @ np.concatenate([x, a]) + net.biases[0]
                lo, hi = bounds[t]
                assert np.all(pre >= lo[i].detach().numpy() - 1e-9) and np.all(pre <= hi[i].detach().numpy() + 1e-9)
                x = net.step(x, a)


def test_the_penalty_lowers_the_unstable_count_at_a_bounded_accuracy_cost():
    net, data = _tiny()
    settings = dict(horizon=4, epochs=4, lr=2e-2, batch_size=128, bound_batch=16, rollout_steps=4)
    plain, _ = stabilise(net, data, StabilitySettings(weight=0.0, **settings), [-0.2], [0.2], seed=0)
    stable, history = stabilise(net, data, StabilitySettings(weight=2.0, **settings), [-0.2], [0.2], seed=0)
    starts = data.states[:, 0]
    before, after = _planner_binaries(plain, starts), _planner_binaries(stable, starts)
    assert after < 0.8 * before  # the planner's own bounds: fewer binaries (223 -> 146 when written)
    assert history[-1]["penalty"] < history[0]["penalty"]
    assert rollout_error(stable, data, 4) < 10 * rollout_error(plain, data, 4) + 1e-4  # still a model of the data
    again, _ = stabilise(net, data, StabilitySettings(weight=2.0, **settings), [-0.2], [0.2], seed=0)
    np.testing.assert_array_equal(again.weights[0], stable.weights[0])  # same seed, same weights
    np.testing.assert_array_equal(net.weights[0], _tiny()[0].weights[0])  # the input network is untouched


def test_stabilise_checks_the_data_fits_the_network():
    net, data = _tiny()
    other = TransitionData(np.zeros((2, 5, 3)), np.zeros((2, 4, 1)), np.full(2, 4))
    with pytest.raises(ControlkitError, match="stabilise"):
        stabilise(net, other, StabilitySettings(epochs=1), [-0.2], [0.2], seed=0)
    with pytest.raises(ValueError, match="weight"):
        StabilitySettings(weight=-1.0)


def _bounds(values):
    """Bounds of one layer per step from ``(lo, hi)`` rows: ``values[t]`` is a list of (lo, hi) per neuron."""
    return [(torch.tensor([[lo for lo, _ in step]], dtype=torch.float64),
             torch.tensor([[hi for _, hi in step]], dtype=torch.float64)) for step in values]


def test_instability_budget_and_exempt_neurons_leave_out_exactly_those_slots():
    # two steps, three ReLUs: terms relu(min(u, -l)) / (u - l) = 0.5, 0.25, 0 then 0.1, 0.5, 0.4
    bounds = _bounds([[(-1, 1), (-3, 1), (0.5, 2)], [(-9, 1), (-2, 2), (-3, 2)]])
    full = instability(bounds, horizon=2)
    assert float(full) == pytest.approx(0.5 + 0.25 + 0.1 + 0.5 + 0.4)
    # the largest term of each step is free
    assert float(instability(bounds, free_per_step=1, horizon=2)) == pytest.approx(0.25 + 0.1 + 0.4)
    exempt = torch.tensor([False, True, False])
    assert float(instability(bounds, horizon=2, exempt=exempt)) == pytest.approx(0.5 + 0.1 + 0.4)
    assert float(instability(bounds, free_per_step=1, horizon=2, exempt=exempt)) == pytest.approx(0.1)


def test_sampled_switching_is_a_lower_bound_of_the_planners_binaries():
    net, data = _tiny()
    mip = MIPMPC(net, 4, [-0.2], [0.2])
    for x in data.states[:5, 0]:
        sampled = sampled_switching(net, x, [-0.2], [0.2], 4, samples=500, seed=0)
        assert sampled.shape == (4,)
        assert 0 < sampled.sum() <= symbolic(mip.problem, x).count(mip.problem)["binaries"]
    np.testing.assert_array_equal(sampled_switching(net, x, [-0.2], [0.2], 4, samples=500, seed=0), sampled)


def test_relu_importance_and_phantom_motion_measure_what_they_say():
    net, data = _tiny()
    # a neuron the output does not read costs nothing when made an identity; the others do change the rollout
    net.weights[1][:, 2] = 0.0
    importance = relu_importance(net, data, 4)
    assert importance.shape == (8,) and importance[2] == pytest.approx(1.0)
    assert np.any(np.abs(np.delete(importance, 2) - 1.0) > 1e-3)
    # over one coordinate: a neuron that writes only to state 1 does not matter for state 0's (first-step) error
    net.weights[1][0, 5] = 0.0
    assert relu_importance(net, data, 1, dims=[0])[5] == pytest.approx(1.0)
    assert relu_importance(net, data, 1, dims=[1])[5] != pytest.approx(1.0)
    # resting data (x stays put): a network that adds 0.1 to x0 invents 0.1 of motion, a zero network none
    rest = TransitionData(np.zeros((3, 5, 2)), np.zeros((3, 4, 1)), np.full(3, 4))
    drift = CompactNetwork([np.zeros((1, 3)), np.zeros((2, 1))], [np.zeros(1), np.array([0.1, 0.0])],
                           [np.ones(1, bool)], 2, 1)
    assert phantom_motion(drift, rest, [0]) == pytest.approx(0.1)
    assert phantom_motion(drift, rest, [1]) == pytest.approx(0.0)
    with pytest.raises(ControlkitError, match="phantom_motion"):
        phantom_motion(drift, data, [0], still=0.0)


def test_budgeted_fine_tune_keeps_more_switching_than_the_full_penalty():
    net, data = _tiny()
    settings = dict(horizon=4, epochs=4, lr=2e-2, batch_size=128, bound_batch=16, rollout_steps=4, weight=2.0)
    starts = data.states[:, 0]
    full, _ = stabilise(net, data, StabilitySettings(**settings), [-0.2], [0.2], seed=0)
    budget, _ = stabilise(net, data, StabilitySettings(free_per_step=4, **settings), [-0.2], [0.2], seed=0)
    exempt, _ = stabilise(net, data, StabilitySettings(free_neurons=4, warmup=0.5, **settings), [-0.2], [0.2], seed=0)
    plain, _ = stabilise(net, data, StabilitySettings(**{**settings, "weight": 0.0}), [-0.2], [0.2], seed=0)
    counts = {k: _planner_binaries(v, starts) for k, v in
              {"full": full, "budget": budget, "exempt": exempt, "plain": plain}.items()}
    assert counts["full"] < counts["budget"] < counts["plain"]
    assert counts["full"] < counts["exempt"] < counts["plain"]


def test_state_weights_trade_accuracy_between_coordinates():
    net, data = _tiny()
    settings = dict(epochs=3, lr=2e-2, batch_size=128, rollout_steps=4, weight=0.0)
    even, _ = stabilise(net, data, StabilitySettings(**settings), [-0.2], [0.2], seed=0)
    first, _ = stabilise(net, data, StabilitySettings(state_weights=[10.0, 0.1], **settings), [-0.2], [0.2], seed=0)
    assert rollout_error(first, data, 4, dims=[0]) < rollout_error(even, data, 4, dims=[0])
    assert rollout_error(first, data, 4, dims=[1]) > rollout_error(even, data, 4, dims=[1])


@pytest.mark.parametrize("fields, name", [
    ({"state_weights": [1.0, 1.0, 1.0]}, "state_weights"),
    ({"free_per_step": 8}, "free_per_step"),
    ({"free_neurons": 9}, "free_neurons"),
    ({"free_neurons": 2, "importance_dims": [2]}, "importance_dims"),
])
def test_stabilise_names_the_bad_field(fields, name):
    net, data = _tiny()
    with pytest.raises(ControlkitError, match=name):
        stabilise(net, data, StabilitySettings(epochs=1, **fields), [-0.2], [0.2], seed=0)
    with pytest.raises(ValueError, match="warmup"):
        StabilitySettings(warmup=1.0)
