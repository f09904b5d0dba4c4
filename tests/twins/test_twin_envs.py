"""The one gym wrapper of the twins: check_env, scaled actions, the reward is the twin_control objective, no reward
hack by extinction, horizons in the registry, no switch to spawn, seeding, rendering, memory, SB3 PPO."""

import gc
import subprocess
import sys
import weakref

import gymnasium as gym
import numpy as np
import pytest
from controlkit.envs.twin_envs import TwinEnv, control_to_action
from controlkit.twins import get_twin, make_task, run_episode
from controlkit.twins.baselines import BangBangController, ConstantTwinController, ScheduleController
from gymnasium.utils.env_checker import check_env

import controlkit  # noqa: F401  registers the envs
from controlkit.core.errors import ControlkitError

PP_SMALL = {"width": 21, "height": 21, "initial_sheep": 40, "initial_wolves": 15}
SMALL = {
    "controlkit/PredatorPrey-v0": {"params": PP_SMALL, "burn_in": 20, "interval": 5, "decisions": 6,
                                   "objective": {"target": [40, 10]}},
    "controlkit/ImmuneTwin-v0": {"params": {"width": 21, "height": 21, "initial_inoculum": 12,
                                            "resident_macrophages": 10}, "burn_in": 6, "interval": 6,
                                 "decisions": 4},
    "controlkit/Metabolic-v0": {"params": {"scale": 0.01}, "interval": 5, "decisions": 6},
}
TWIN_OF = {"controlkit/PredatorPrey-v0": "predator_prey", "controlkit/ImmuneTwin-v0": "immune",
           "controlkit/Metabolic-v0": "metabolic"}
IDS = list(SMALL)


@pytest.mark.parametrize("env_id", IDS)
def test_check_env_on_small_twins(env_id):
    env = gym.make(env_id, render_mode="rgb_array", **SMALL[env_id])
    assert type(env.unwrapped) is TwinEnv  # one wrapper class for every twin
    check_env(env.unwrapped, skip_render_check=False)
    env.close()


@pytest.mark.parametrize("env_id", IDS)
def test_registered_horizon_is_the_twin_task_horizon(env_id):
    spec = gym.spec(env_id)
    assert spec.max_episode_steps == get_twin(TWIN_OF[env_id]).task["decisions"]
    assert make_task(TWIN_OF[env_id]).decisions == spec.max_episode_steps


@pytest.mark.parametrize("env_id", IDS)
def test_actions_are_scaled_from_unit_box_clipped_and_nan_rejected(env_id):
    env = gym.make(env_id, **SMALL[env_id]).unwrapped
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    low, high = env.task.bounds
    env.reset(seed=0)
    _, reward, _, _, info = env.step(np.full(env.action_space.shape, 5.0, dtype=np.float32))
    np.testing.assert_allclose(info["control"], high)  # clipped to +1 = the upper bound
    np.testing.assert_allclose(env.decision(-np.ones(env.action_space.shape)), low)
    mid = env.decision(np.zeros(env.action_space.shape))
    np.testing.assert_allclose(mid, env.task.admissible((low + high) / 2))
    assert np.isfinite(reward)
    with pytest.raises(ControlkitError, match="action: must be finite"):
        env.step(np.full(env.action_space.shape, np.nan, dtype=np.float32))
    with pytest.raises(ControlkitError, match="action: expected shape"):
        env.step(np.zeros(5, dtype=np.float32))


@pytest.mark.parametrize("env_id", IDS)
def test_return_is_minus_the_twin_control_cost(env_id):
    # The env's reward and twin_control's score are one objective: the same decisions on the same seed give an
    # episode return of exactly minus run_episode's cost.
    env = gym.make(env_id, **SMALL[env_id]).unwrapped
    task = env.task
    actions = np.random.default_rng(1).uniform(-1, 1, (task.decisions, *env.action_space.shape)).astype(np.float32)
    decisions = np.array([env.decision(a) for a in actions])
    for d in decisions:  # control_to_action inverts the action map
        np.testing.assert_allclose(env.decision(control_to_action(task, d)), d, rtol=1e-6)
    episode = run_episode(task, ScheduleController(decisions), seed=4)
    env.reset(seed=4)
    total, steps, terminated = 0.0, 0, False
    while not terminated:
        _, reward, terminated, truncated, info = env.step(actions[steps])
        np.testing.assert_array_equal(info["control"], decisions[steps])
        total += reward
        steps += 1
    assert steps == task.decisions and not truncated
    assert total == pytest.approx(-episode.cost, rel=1e-9, abs=1e-12)
    assert env.ticks_simulated == task.burn_in + task.ticks


def _return(env, seed, policy):
    obs, _ = env.reset(seed=seed)
    total, steps, done = 0.0, 0, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(policy(steps, obs))
        total += reward
        steps += 1
        done = terminated or truncated
    return total, steps


def test_culling_every_animal_is_no_reward_hack():
    # Culling every animal at the first step (removal probability 1) used to end the episode with a better return
    # than any real controller. Now extinction keeps paying the tracking cost until the horizon: the hack is worse
    # than doing nothing and than the objective's bang-bang rule, and the episode does not end early.
    env = TwinEnv("predator_prey", params={**PP_SMALL, "removal": "fraction"}, burn_in=30, interval=5,
                  decisions=12, objective={"target": [40, 10]})
    task = env.task
    bang_bang = BangBangController(task)
    seeds = [0, 1, 2]
    hack = [_return(env, s, lambda k, obs: np.ones(2) if k == 0 else -np.ones(2)) for s in seeds]
    none = [_return(env, s, lambda k, obs: -np.ones(2)) for s in seeds]
    bb = [_return(env, s, lambda k, obs: control_to_action(task, bang_bang.act(obs[:3] * env.observation_scale)))
          for s in seeds]
    assert all(steps == task.decisions for _, steps in hack)
    assert env.twin.observe()[:2].sum() == 0  # the hack did wipe out both species
    hack_return = np.mean([r for r, _ in hack])
    assert hack_return < np.mean([r for r, _ in none])
    assert hack_return < np.mean([r for r, _ in bb])
    # the same ordering on twin_control's side (the score is the same objective)
    cull_all = ScheduleController(np.vstack([[1.0, 1.0], np.zeros((task.decisions - 1, 2))]))
    assert run_episode(task, cull_all, 0).cost > run_episode(task, ConstantTwinController([0, 0]), 0).cost


def test_making_a_twin_env_keeps_the_multiprocessing_start_method():
    # Mesa's batch runner sets "spawn" for the whole process when imported; the twins import Mesa without it.
    code = ("import multiprocessing as mp, gymnasium as gym, controlkit; "
            "env = gym.make('controlkit/Metabolic-v0', params={'scale': 0.01}); env.reset(seed=0); "
            "print(mp.get_start_method(allow_none=True))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "None"


@pytest.mark.parametrize("env_id", IDS)
def test_seeded_episodes_repeat(env_id):
    def episode():
        env = gym.make(env_id, **SMALL[env_id]).unwrapped
        obs = [env.reset(seed=11)[0]]
        rng = np.random.default_rng(0)
        for _ in range(3):
            obs.append(env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))[0])
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


def test_observation_is_scaled_observables_and_time():
    env = TwinEnv("predator_prey", params=PP_SMALL, burn_in=0, interval=2, decisions=4, normalize=False)
    obs, _ = env.reset(seed=3)
    np.testing.assert_array_equal(obs[:3], env.twin.observe().astype(np.float32))
    assert obs[3] == 0 and env.observable_names == ("sheep", "wolves", "grass", "time_fraction")
    obs, *_ = env.step(-np.ones(2, dtype=np.float32))
    assert obs[3] == pytest.approx(0.25)


@pytest.mark.parametrize("kwargs, field", [({"interval": 0}, "interval"),
                                           ({"render_mode": "human"}, "render_mode"),
                                           ({"params": {"wolves": 3}}, "params.wolves"),
                                           ({"objective": {"target": (0, 10)}}, "objective.target"),
                                           ({"weights": {"comfort": 1.0}}, "objective.weights.comfort"),
                                           ({"twin": "zoo"}, "twin")])
def test_bad_env_arguments(kwargs, field):
    with pytest.raises(ControlkitError, match=field):
        TwinEnv(**{"twin": "predator_prey", **kwargs})


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
    env = gym.make("controlkit/PredatorPrey-v0", **SMALL["controlkit/PredatorPrey-v0"])
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=32, n_epochs=2, seed=0, device="cpu", verbose=0)
    model.learn(total_timesteps=128)
    assert model.num_timesteps >= 128
    obs, _ = env.reset(seed=1)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.shape == action.shape
    _, reward, *_ = env.step(action)
    assert np.isfinite(reward)
