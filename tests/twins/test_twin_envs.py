"""Gymnasium wrappers of the twins: check_env, clipping, seeding, rendering, memory across resets, SB3 PPO."""

import gc
import weakref

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import controlkit  # noqa: F401  registers the envs
from controlkit.core.errors import ControlkitError

SMALL = {
    "controlkit/PredatorPrey-v0": {"params": {"width": 21, "height": 21, "initial_sheep": 40, "initial_wolves": 15}},
    "controlkit/ImmuneTwin-v0": {"params": {"width": 21, "height": 21, "initial_inoculum": 12,
                                            "resident_macrophages": 10}, "ticks_per_step": 6},
    "controlkit/Metabolic-v0": {"params": {"scale": 0.01}},
}
IDS = list(SMALL)


@pytest.mark.parametrize("env_id", IDS)
def test_check_env_on_small_twins(env_id):
    # tests/core checks the defaults; this checks the non-default constructor path too
    env = gym.make(env_id, render_mode="rgb_array", **SMALL[env_id])
    check_env(env.unwrapped, skip_render_check=False)
    env.close()


@pytest.mark.parametrize("env_id", IDS)
def test_actions_are_clipped_and_nan_rejected(env_id):
    env = gym.make(env_id, **SMALL[env_id]).unwrapped
    env.reset(seed=0)
    high = env.action_space.high
    _, reward, _, _, info = env.step(high + 5.0)
    np.testing.assert_allclose(info["control"], high)
    assert np.isfinite(reward)
    with pytest.raises(ControlkitError, match="action: must be finite"):
        env.step(np.full(env.action_space.shape, np.nan, dtype=np.float32))
    with pytest.raises(ControlkitError, match="action: expected shape"):
        env.step(np.zeros(5, dtype=np.float32))


@pytest.mark.parametrize("env_id", IDS)
def test_seeded_episodes_repeat(env_id):
    def episode():
        env = gym.make(env_id, **SMALL[env_id]).unwrapped
        obs = [env.reset(seed=11)[0]]
        rng = np.random.default_rng(0)
        for _ in range(5):
            obs.append(env.step(rng.uniform(env.action_space.low, env.action_space.high).astype(np.float32))[0])
        obs.append(env.reset()[0])  # unseeded reset: seed drawn from the env's generator
        return np.array(obs)

    np.testing.assert_array_equal(episode(), episode())


@pytest.mark.parametrize("env_id", IDS)
def test_render_is_an_rgb_picture_of_the_grid(env_id):
    env = gym.make(env_id, render_mode="rgb_array", **SMALL[env_id])
    env.reset(seed=0)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3 and min(frame.shape[:2]) >= 200
    assert frame.std() > 0  # not a blank image


def test_predator_prey_reward_is_minus_the_documented_cost():
    from controlkit.twins import predator_prey_cost

    env = gym.make("controlkit/PredatorPrey-v0", target=(50.0, 20.0), effort_weight=2.0, normalize=False).unwrapped
    env.reset(seed=3)
    obs, reward, *_ = env.step(np.array([0.1, 0.2], dtype=np.float32))
    u = np.array([0.1, 0.2], dtype=np.float32).astype(float)
    assert reward == pytest.approx(-predator_prey_cost(obs, u, (50.0, 20.0), 2.0))
    assert obs[0] == env.twin.observe()[0]  # normalize=False passes raw counts


def test_immune_episode_reports_its_outcome():
    env = gym.make("controlkit/ImmuneTwin-v0", episode_steps=3, **SMALL["controlkit/ImmuneTwin-v0"]).unwrapped
    env.reset(seed=0)
    done, info = False, {}
    while not done:
        _, reward, terminated, truncated, info = env.step(np.array([0.5, 0.0], dtype=np.float32))
        assert -1.5 < reward <= 0.0
        done = terminated or truncated
    assert set(info["outcome"]) >= {"recovered", "failed", "peak_damage", "clearance_day"}
    assert env.twin.steps == 18


@pytest.mark.parametrize("kwargs, field", [({"ticks_per_step": 0}, "ticks_per_step"),
                                           ({"render_mode": "human"}, "render_mode"),
                                           ({"params": {"wolves": 3}}, "params.wolves"),
                                           ({"target": (0, 10)}, "target")])
def test_bad_env_arguments(kwargs, field):
    from controlkit.envs.twin_envs import PredatorPreyEnv

    with pytest.raises(ControlkitError, match=field):
        PredatorPreyEnv(**kwargs)


@pytest.mark.parametrize("env_id", IDS)
def test_resets_release_the_old_twin(env_id):
    env = gym.make(env_id, **SMALL[env_id]).unwrapped
    env.reset(seed=0)
    env.step(env.action_space.sample())
    old = weakref.ref(env.twin)
    for i in range(5):
        env.reset(seed=i)
    gc.collect()
    assert old() is None  # nothing (registries, data collectors, layers) keeps an old episode alive


def test_sb3_ppo_trains_a_few_hundred_steps_on_predator_prey():
    import torch
    from stable_baselines3 import PPO

    torch.set_num_threads(1)
    env = gym.make("controlkit/PredatorPrey-v0", episode_steps=100, **SMALL["controlkit/PredatorPrey-v0"])
    model = PPO("MlpPolicy", env, n_steps=128, batch_size=64, n_epochs=2, seed=0, device="cpu", verbose=0)
    model.learn(total_timesteps=256)
    assert model.num_timesteps >= 256
    obs, _ = env.reset(seed=1)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.shape == action.shape
    _, reward, *_ = env.step(action)
    assert np.isfinite(reward)
