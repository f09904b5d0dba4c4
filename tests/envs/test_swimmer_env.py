"""The swimmer env: dm_control body and physics, rewards, determinism, check_env, bad inputs."""

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from controlkit.envs.swimmer import EPISODE_STEPS, SwimmerEnv, swimmer_xml
from gymnasium.utils.env_checker import check_env

import controlkit  # noqa: F401  (registers controlkit/Swimmer-v0)
from controlkit.core.errors import ControlkitError


@pytest.mark.parametrize("n_links", [3, 6, 11])
@pytest.mark.parametrize("task", ["swim", "navigate"])
def test_check_env_clean(n_links, task):
    env = SwimmerEnv(n_links, task=task, time_obs=(n_links == 6))
    check_env(env, skip_render_check=True)


def test_registered_with_episode_length():
    env = gym.make("controlkit/Swimmer-v0", n_links=4)
    assert env.spec.max_episode_steps == EPISODE_STEPS
    obs, info = env.reset(seed=0)
    assert obs.shape == (3 + 3 * 4,) and info["step"] == 0


@pytest.mark.parametrize("n_links", [3, 6, 14])
def test_body_matches_dm_control(n_links):
    model = mujoco.MjModel.from_xml_string(swimmer_xml(n_links))
    assert model.nbody == n_links + 1  # + world
    assert model.nu == n_links - 1
    limits = np.broadcast_to(np.deg2rad(360 / n_links) * np.array([-1.0, 1.0]), (n_links - 1, 2))
    np.testing.assert_allclose(model.jnt_range[3:], limits)
    np.testing.assert_allclose(model.body_mass[1:], 0.01)  # only the thin inertial boxes carry mass
    np.testing.assert_allclose(model.actuator_gear[:, 0], 5e-4)
    assert model.opt.timestep == 0.002 and model.opt.density == 3000 and model.opt.viscosity == 0
    assert model.opt.disableflags & mujoco.mjtDisableBit.mjDSBL_CONTACT


def test_control_step_is_fifteen_physics_steps():
    env = SwimmerEnv(6)
    env.reset(seed=3)
    model, data = env.model, mujoco.MjData(env.model)
    data.qpos[:], data.qvel[:] = env.data.qpos, env.data.qvel
    action = np.linspace(-1, 1, 5)
    env.step(action)
    data.ctrl[:] = action
    for _ in range(15):
        mujoco.mj_step(model, data)
    np.testing.assert_allclose(env.data.qpos, data.qpos, atol=1e-12)
    # the observation describes the new state (sensors are not one physics step stale)
    mujoco.mj_forward(model, data)
    np.testing.assert_allclose(env.forward_speed(), -data.sensordata[1], atol=1e-12)


def test_same_seed_same_numbers_and_seeds_differ():
    def run(seed):
        env = SwimmerEnv(5, task="navigate")
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(0)
        traj = [obs]
        for _ in range(30):
            obs, r, *_ = env.step(rng.uniform(-1, 1, 4))
            traj.append(np.append(obs, r))
        return np.concatenate(traj)

    np.testing.assert_array_equal(run(7), run(7))
    assert not np.allclose(run(7), run(8))


def test_swim_reward_is_the_forward_speed_ramp():
    env = SwimmerEnv(6)
    env.reset(seed=0)
    seen = []
    for k in range(200):
        _, reward, *_ = env.step(np.sign(np.sin(k / 5 + np.arange(5))))
        speed = env.forward_speed()
        assert reward == pytest.approx(min(max(speed / 0.1, 0.0), 1.0))
        seen.append(reward)
    assert min(seen) == 0.0 and 0.0 < max(seen)  # the ramp is exercised, not constant


def test_navigate_reward_is_one_at_the_target():
    env = SwimmerEnv(4, task="navigate")
    obs, _ = env.reset(seed=0)
    lay = env.layout
    np.testing.assert_allclose(obs[lay.to_target], env.nose_to_target())
    nose = env.data.geom_xpos[env.model.geom("nose").id]
    env.model.geom_pos[env.model.geom("target").id, :2] = nose[:2]
    _, reward, *_ = env.step(np.zeros(3))
    assert reward == 1.0  # the nose moves millimetres in one control step, well inside the 0.1 radius
    env.model.geom_pos[env.model.geom("target").id, :2] = nose[:2] + np.array([0.6, 0.0])
    _, far, *_ = env.step(np.zeros(3))
    assert 0.0 < far < 0.2  # long tail: about 0.1 at one margin (0.5) beyond the target radius


def test_time_observation_counts_control_steps():
    env = SwimmerEnv(3, time_obs=True)
    obs, _ = env.reset(seed=0)
    assert obs[-1] == 0.0
    for k in range(1, 4):
        obs, _, _, _, info = env.step(np.zeros(2))
        assert info["step"] == k and obs[-1] == pytest.approx(k / EPISODE_STEPS)


def test_rgb_array_rendering():
    env = SwimmerEnv(6, render_mode="rgb_array", width=160, height=120)
    env.reset(seed=0)
    try:
        frame = env.render()
    except mujoco.FatalError as exc:  # no OpenGL on this machine: set MUJOCO_GL=egl
        pytest.skip(f"no offscreen OpenGL: {exc}")
    assert frame.shape == (120, 160, 3) and frame.dtype == np.uint8 and frame.std() > 0
    env.close()


@pytest.mark.parametrize("bad", [2, 0, -4, 6.5, "6", True, None])
def test_bad_n_links(bad):
    with pytest.raises(ControlkitError, match="n_links"):
        SwimmerEnv(bad)


def test_bad_task_names_choices():
    with pytest.raises(ControlkitError, match=r"task.*navigate, swim"):
        SwimmerEnv(6, task="fly")


def test_bad_action_shape():
    env = SwimmerEnv(6)
    env.reset(seed=0)
    with pytest.raises(ControlkitError, match="action"):
        env.step(np.zeros(4))
