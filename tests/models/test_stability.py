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
    rollout_error,
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
