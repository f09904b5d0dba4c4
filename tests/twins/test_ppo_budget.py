"""PPO on a twin within an ABM-tick budget: the budget holds (burn-ins paid once per pooled twin), the rollout
buffer is sized to it, the learning curve is recorded, pooled episodes draw their own randomness, same seed same
policy, and a budget too small for one episode is refused naming the field."""

import numpy as np
import pytest
import torch
from controlkit.twins import make_task, run_episode
from controlkit.twins.baselines import PPOTwinController, train_ppo

from controlkit.core.errors import ControlkitError

pytest.importorskip("stable_baselines3")

PP_SMALL = {"width": 21, "height": 21, "initial_sheep": 40, "initial_wolves": 15}


@pytest.fixture(scope="module")
def task():
    torch.set_num_threads(1)
    return make_task("predator_prey", PP_SMALL, None, {"target": [40, 10]}, burn_in=20, interval=5, decisions=6)


@pytest.fixture(scope="module")
def trained(task):
    return train_ppo(task, 1030, seed=0, updates=4, curve_points=3, curve_seeds=[7, 8])


def test_budget_is_spent_as_stated(task, trained):
    s = trained.settings
    # 8 pooled burn-ins of 20 ticks, then (1030 - 160) // 30 = 29 episodes of 30 controlled ticks would fit; PPO
    # runs whole rollouts of 29 // 4 = 7 episodes, so 28 (SB3 would otherwise finish a fifth rollout, over budget)
    assert s["pool"] == 8 and s["episodes"] == 28 == trained.episodes
    assert trained.abm_ticks == 8 * task.burn_in + 28 * task.ticks <= 1030
    assert s["n_steps"] == (28 // 4) * task.decisions and s["n_steps"] % s["batch_size"] == 0
    ticks = [t for t, _ in trained.curve["episodes"]]
    assert len(ticks) == 28 and ticks == sorted(ticks) and ticks[-1] == trained.abm_ticks
    # checkpoints: the untrained policy, the ones in between, the end; each a mean and a CI over 2 seeds
    cp = np.array(trained.curve["checkpoints"])
    assert cp.shape[1] == 3 and len(cp) >= 3 and cp[-1, 0] == trained.abm_ticks and np.all(np.diff(cp[:, 0]) > 0)
    assert np.all(np.isfinite(cp[:, 1:]))


def test_checkpoint_is_the_deterministic_policys_cost(task, trained):
    # the last checkpoint scores the final controller on the curve seeds
    costs = [run_episode(task, trained.controller, s).cost for s in (7, 8)]
    assert trained.curve["checkpoints"][-1][1] == pytest.approx(np.mean(costs))


def test_controller_normalises_as_training_did(trained):
    ctrl = trained.controller
    assert isinstance(ctrl, PPOTwinController) and ctrl.obs_mean is not None
    assert ctrl.obs_mean.shape == ctrl.obs_std.shape == (len(ctrl.obs_scale) + 1,)  # observables + time fraction
    ctrl.reset(0)
    u = ctrl.act(np.array([40.0, 10.0, 200.0]))
    low, high = ctrl.task.bounds
    assert np.all(u >= low) and np.all(u <= high) and np.all(u == np.round(u))


def test_same_seed_same_policy_and_curve(task, trained):
    again = train_ppo(task, 1030, seed=0, updates=4, curve_points=3, curve_seeds=[7, 8])
    assert again.curve == trained.curve
    for a, b in zip(again.controller.weights, trained.controller.weights):
        np.testing.assert_array_equal(a, b)


def test_pooled_episodes_draw_their_own_randomness(task):
    # a pool of one twin: every episode starts from a copy of the same burnt-in state, yet they differ
    res = train_ppo(task, 20 + 8 * 30, seed=1, pool=1, updates=1, curve_seeds=[])
    assert res.settings["pool"] == 1 and res.episodes == 8 and res.abm_ticks == 20 + 8 * 30
    assert len({round(c, 9) for _, c in res.curve["episodes"]}) > 1
    assert res.curve["checkpoints"] == []


def test_budget_too_small_is_refused(task):
    with pytest.raises(ControlkitError, match="ppo.abm_ticks"):
        train_ppo(task, 40, seed=0)
