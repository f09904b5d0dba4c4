"""NCAP wiring (one test per pathway), sign constraints, parameter counts, the controller, bad inputs."""

import math

import numpy as np
import pytest
import torch
from controlkit.envs.swimmer import SwimmerEnv, SwimmerLayout
from controlkit.policies import MLPPolicy, NCAPPolicy, count_parameters
from controlkit.policies._circuit import circuit
from controlkit.policies._rollout import episode_return

from controlkit.core.errors import ControlkitError


def _obs(n_joints, angles=None, **layout):
    lay = SwimmerLayout(n_joints + 1, **layout)
    obs = np.zeros(lay.size)
    if angles is not None:
        obs[lay.joints] = angles
    return torch.tensor(obs)


def _limit(n_joints):
    return 2 * math.pi / (n_joints + 1)


@pytest.mark.parametrize("n_joints", [2, 5, 13])
def test_four_parameters_with_sharing_for_any_length(n_joints):
    assert count_parameters(NCAPPolicy(n_joints)) == 4


@pytest.mark.parametrize("n_joints", [2, 5, 9])
def test_parameter_count_without_sharing(n_joints):
    assert count_parameters(NCAPPolicy(n_joints, weight_sharing=False)) == 2 * (n_joints - 1) + 2 + 4 * n_joints


def test_navigation_adds_speed_and_turn():
    assert count_parameters(NCAPPolicy(5, navigation="hardcoded")) == 6
    assert count_parameters(NCAPPolicy(5, navigation="learned")) == 6 + 9  # + Linear(2, 3)


def test_mlp_size_matches_the_reference():
    assert count_parameters(MLPPolicy(23, 5, hidden=(256, 256))) == 23 * 256 + 256 + 256 * 256 + 256 + 256 * 5 + 5


def test_oscillator_drives_the_head():
    pol = NCAPPolicy(5, oscillator_period=60)
    straight = _obs(5)
    for step, sign in [(0, 1.0), (29, 1.0), (30, -1.0), (59, -1.0), (60, 1.0)]:
        torque = pol(straight, step).detach().numpy()
        assert torque[0] == sign, step  # dorsal half then ventral half
        np.testing.assert_array_equal(torque[1:], 0.0)  # nothing else moves on a straight body
    assert torch.all(NCAPPolicy(5, oscillator=False)(straight, 0) == 0)


@pytest.mark.parametrize("side", [1.0, -1.0])
def test_proprioception_propagates_a_bend_tailwards(side):
    pol = NCAPPolicy(5, oscillator=False)
    angles = np.zeros(5)
    angles[2] = side * _limit(5)  # joint 2 fully bent dorsally (+) or ventrally (-)
    torque = pol(_obs(5, angles), 0).detach().numpy()
    expected = np.zeros(5)
    expected[3] = side  # the joint behind bends the same way; nothing travels forwards
    np.testing.assert_array_equal(torque, expected)
    assert torch.all(NCAPPolicy(5, oscillator=False, proprioception=False)(_obs(5, angles), 0) == 0)


def test_contralateral_inhibition_cancels_cocontraction():
    pol = NCAPPolicy(3, oscillator=False, navigation="hardcoded", n_turn_joints=1)
    with torch.no_grad():
        pol.weights["speed"].zero_()
    w = pol.circuit_weights()
    one, zero = torch.ones(1), torch.zeros(1)
    straight, no_drive = torch.zeros(3), torch.zeros(6)
    # Right and left turn commands drive the head's dorsal and ventral B-neurons at once: each muscle is
    # inhibited by the other side's B-neuron, so there is no torque.
    torque, act = circuit(straight, no_drive, None, one, one, w, activity=True)
    assert act["b_d"][0] == 1 and act["b_v"][0] == 1 and torch.all(act["m_d"] == 0) and torch.all(torque == 0)
    dorsal = circuit(straight, no_drive, None, one, zero, w)
    assert dorsal[0] == 1 and torch.all(dorsal[1:] == 0)


def test_sign_constraints_hold_after_an_optimizer_step():
    pol = NCAPPolicy(5, weight_sharing=False)
    opt = torch.optim.SGD(pol.parameters(), lr=10.0)
    # A loss whose gradient pushes every weight across zero.
    loss = sum((p * torch.sign(p.detach())).sum() for p in pol.parameters())
    loss.backward()
    opt.step()
    assert any((p < 0).any() for n, p in pol.weights.items() if not n.startswith("contra"))  # raw weights crossed
    w = pol.circuit_weights()
    n = 5
    muscle = w["muscle"]
    ipsi = torch.cat([muscle[:n, :n].diagonal(), muscle[n:, n:].diagonal()])
    contra = torch.cat([muscle[n:, :n].diagonal(), muscle[:n, n:].diagonal()])
    assert torch.all(w["prop"] >= 0) and torch.all(w["osc"] >= 0) and torch.all(ipsi >= 0)
    assert torch.all(contra <= 0)
    free = NCAPPolicy(5, weight_sharing=False, sign_constraints=False)
    with torch.no_grad():
        free.weights["ipsi_d"].fill_(-0.5)
    assert torch.all(free.circuit_weights()["muscle"][:n, :n].diagonal() < 0)  # without constraints: any sign


def test_constant_and_random_init():
    w = NCAPPolicy(4).weights
    assert {k: v.item() for k, v in w.items()} == {"prop": 1.0, "osc": 1.0, "ipsi": 1.0, "contra": -1.0}
    a, b = NCAPPolicy(4, constant_init=False, seed=1), NCAPPolicy(4, constant_init=False, seed=1)
    assert all(torch.equal(a.weights[k], b.weights[k]) for k in a.weights)
    assert a.weights["contra"].item() < 0 < a.weights["ipsi"].item() < 1


def test_constant_initialised_circuit_already_swims():
    env = SwimmerEnv(6)
    ret = episode_return(NCAPPolicy(5).to_numpy(), env, seed=0)
    assert ret > 700  # measured 811 (of 1000); a random policy gets about 20


def test_batched_forward_matches_rows_and_time_obs():
    pol = NCAPPolicy(5, constant_init=False, seed=3)
    rng = np.random.default_rng(0)
    obs = torch.tensor(rng.normal(size=(7, 23)))
    steps = torch.arange(7) * 11
    batch = pol(obs, steps)
    rows = torch.stack([pol(o, s) for o, s in zip(obs, steps)])
    torch.testing.assert_close(batch, rows)
    timed = NCAPPolicy(5, constant_init=False, seed=3, time_obs=True)
    obs_t = torch.cat([obs, (steps / 1000.0)[:, None].double()], dim=1)
    torch.testing.assert_close(timed(obs_t), batch)


def test_controller_counts_its_own_steps():
    pol = NCAPPolicy(5)
    env = SwimmerEnv(6)
    obs, _ = env.reset(seed=0)
    pol.reset()
    for k in range(70):
        action = pol.act(obs)
        np.testing.assert_allclose(action, pol(torch.tensor(obs), k).detach().numpy(), atol=1e-6)
        obs, *_ = env.step(action)
    pol.reset()
    np.testing.assert_allclose(pol.act(obs), pol(torch.tensor(obs), 0).detach().numpy(), atol=1e-6)


def test_controller_sees_weight_updates():
    pol = NCAPPolicy(5)
    obs = np.zeros(23)
    obs[0] = 0.3
    pol.reset()
    before = pol.act(obs)
    with torch.no_grad():
        pol.weights["prop"].mul_(0.0)
        pol.weights["osc"].mul_(0.0)
    pol.reset()
    assert not np.allclose(before, pol.act(obs))


def test_transfer_to_other_lengths_needs_sharing():
    pol = NCAPPolicy(5)
    with torch.no_grad():
        pol.weights["prop"].fill_(1.7)
    for n in (2, 9, 13):
        other = pol.with_n_joints(n)
        assert other.n_joints == n and other.weights["prop"].item() == pytest.approx(1.7)
    with pytest.raises(ControlkitError, match="n_joints.*weight sharing"):
        NCAPPolicy(5, weight_sharing=False).with_n_joints(7)


def test_policy_for_another_joint_count_is_rejected():
    with pytest.raises(ControlkitError, match="observation"):
        NCAPPolicy(5, weight_sharing=False)(_obs(7), 0)


@pytest.mark.parametrize("period", [0, -60, 2.5])
def test_bad_oscillator_period(period):
    with pytest.raises(ControlkitError, match="oscillator_period"):
        NCAPPolicy(5, oscillator_period=period)


def test_bad_navigation_and_missing_clock():
    with pytest.raises(ControlkitError, match="navigation.*hardcoded, learned"):
        NCAPPolicy(5, navigation="gps")
    with pytest.raises(ControlkitError, match="step"):
        NCAPPolicy(5)(_obs(5))
    with pytest.raises(ControlkitError, match="n_joints"):
        NCAPPolicy(1)


def test_hardcoded_navigation_turns_towards_the_target():
    pol = NCAPPolicy(5, navigation="hardcoded")
    lay = pol.layout
    left, right = torch.zeros(lay.size), torch.zeros(lay.size)
    left[lay.to_target], right[lay.to_target] = torch.tensor([1.0, -0.2]), torch.tensor([-1.0, -0.2])
    # +x in the head frame is the swimmer's left. In the oscillator's dorsal half a left command drives the head's
    # ventral B-neuron against it (torque 0); a right command adds to it (torque 1).
    assert pol(left, 0)[0] == 0.0 and pol(right, 0)[0] == 1.0
    env = SwimmerEnv(6, task="navigate")
    blind = NCAPPolicy(5, navigation="hardcoded")
    with torch.no_grad():
        blind.weights["turn"].zero_()
    for seed in (1, 2):  # measured: 795 vs 46 and 892 vs 135
        assert episode_return(pol.to_numpy(), env, seed) > 3 * episode_return(blind.to_numpy(), env, seed)


def test_runs_batched_over_a_vector_env():
    import gymnasium as gym

    import controlkit  # noqa: F401

    envs = gym.make_vec("controlkit/Swimmer-v0", num_envs=3, vectorization_mode="sync", n_links=4, time_obs=True)
    pol = NCAPPolicy.for_env(envs.envs[0])
    obs, _ = envs.reset(seed=0)
    total = np.zeros(3)
    for _ in range(100):
        with torch.no_grad():
            action = pol(torch.as_tensor(obs)).numpy()
        assert action.shape == (3, 3)
        obs, reward, *_ = envs.step(action)
        total += reward
    envs.close()
    assert np.all(total > 0) and len(set(np.round(total, 6))) == 3  # every env swims, from its own start
