"""Rope-v0: real MuJoCo physics of the capsule chain, determinism, the shape error, targets, bad input."""

import gymnasium as gym
import numpy as np
import pytest
from controlkit.envs.rope import RopeEnv, centred_chain, obs_particles, obs_pusher, shape_error
from gymnasium.utils.env_checker import check_env

import controlkit  # noqa: F401  registers the envs
from controlkit.core.errors import ControlkitError

N = 12


def _straight(env, pusher, target=None):
    """A straight rope along x centred at the origin; the target defaults to where it lies."""
    pts = centred_chain(np.zeros(2), 0.0, np.zeros(env.n_particles - 1), env.segment_length)
    options = {"rope": [0.0, 0.0, 0.0], "pusher": pusher, "target": pts if target is None else target}
    return env.reset(options=options)


@pytest.mark.parametrize("kwargs", [{}, {"target": "arc", "n_particles": 6, "goal_in_obs": False}])
def test_rope_is_check_env_clean(kwargs):
    env = RopeEnv(render_mode="rgb_array", **kwargs)
    check_env(env, skip_render_check=False)
    frame = env.render()
    assert frame.shape == (320, 320, 3) and frame.std() > 0
    env.close()


def test_registered_and_same_seed_same_trajectory():
    def run(seed):
        env = gym.make("controlkit/Rope-v0", target="arc")
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(seed)
        out = [obs]
        for _ in range(6):
            out.append(env.step(rng.uniform(-0.03, 0.03, 2))[0])
        env.close()
        return np.array(out)

    a, b = run(3), run(3)
    np.testing.assert_array_equal(a, b)
    c = run(4)
    assert not np.allclose(a[0], c[0])  # another seed: another rope, target and pusher
    assert a.shape == (7, 4 * N + 2)


def test_pushing_the_middle_bends_the_rope_and_the_error_follows_the_particles():
    env = RopeEnv(terminate_on_success=False)
    obs, info = _straight(env, pusher=[0.0, -0.04])
    assert info["distance"] == pytest.approx(0.0, abs=1e-9) and info["success"]
    start = obs[obs_particles(N)].reshape(N, 2)
    for _ in range(3):
        obs, reward, terminated, _, info = env.step([0.0, 0.03])
    pts = obs[obs_particles(N)].reshape(N, 2)
    y = pts[:, 1]
    # the middle went along with the pusher, the ends lag behind: a bend, not a rigid shift
    assert y[N // 2] > 0.04 and y[N // 2] - max(y[0], y[-1]) > 0.02
    assert y.argmax() in (N // 2 - 1, N // 2)
    # the particles stay a rope: neighbours one segment apart (within the bend's chord shortening)
    gaps = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    assert np.all(gaps > 0.9 * env.segment_length) and np.all(gaps < 1.01 * env.segment_length)
    # the shape error is what the particles say it is, and the reward its negative
    expected = np.linalg.norm(pts - start, axis=1).mean()
    assert info["distance"] == pytest.approx(expected, rel=1e-9) and reward == pytest.approx(-expected)
    assert info["distance"] > 0.02 and not info["success"]
    # pulling back: no contact, friction holds the bent rope where it is (quasi-static)
    obs, *_ = env.step([0.0, -0.03])
    np.testing.assert_allclose(obs[obs_particles(N)].reshape(N, 2), pts, atol=2e-3)
    np.testing.assert_allclose(obs[obs_pusher(N)], [0.0, 0.03 * 3 - 0.04 - 0.03], atol=2e-3)


def test_pushing_an_end_swings_the_rope_about_its_far_part():
    env = RopeEnv(terminate_on_success=False)
    _straight(env, pusher=[0.135, -0.04])
    for _ in range(3):
        obs, *_ = env.step([0.0, 0.03])
    y = obs[obs_particles(N)].reshape(N, 2)[:, 1]
    assert y[-1] > 0.05 and abs(y[0]) < 0.03  # the pushed end moved along, the far end stayed near its line


def test_far_pusher_leaves_the_rope_alone():
    env = RopeEnv()
    obs0, _ = env.reset(seed=1, options={"rope": [0.0, 0.0, 0.5], "pusher": [-0.25, -0.25]})
    obs, *_ = env.step([0.03, 0.0])
    np.testing.assert_allclose(obs[obs_particles(N)], obs0[obs_particles(N)], atol=1e-4)


def test_shape_error_ignores_the_rope_direction_and_success_terminates():
    pts = centred_chain(np.zeros(2), 0.3, np.full(N - 1, 0.1), 0.025)
    assert shape_error(pts, pts[::-1]) == 0.0
    assert shape_error(pts, pts + [0.01, 0.0]) == pytest.approx(0.01)
    env = RopeEnv(tolerance=0.015)
    obs, info = _straight(env, pusher=[0.2, 0.2], target=(_line := centred_chain(
        np.zeros(2), 0.0, np.zeros(N - 1), 0.025))[::-1] + [0.0, 0.01])
    assert info["success"] and info["distance"] == pytest.approx(0.01)
    assert env.step([0.0, 0.0])[2]  # terminated on success


def test_sampled_targets_are_lines_and_arcs_of_the_rope_length():
    for kind, turn in (("line", 0.0), ("arc", np.pi / 2)):
        env = RopeEnv(target=kind)
        for seed in range(3):
            _, info = env.reset(seed=seed)
            t = info["target"]
            gaps = np.linalg.norm(np.diff(t, axis=0), axis=1)
            np.testing.assert_allclose(gaps, 0.025 * np.cos(turn / (N - 1) / 2), rtol=1e-9)
            d = np.diff(t, axis=0)
            angles = np.diff(np.unwrap(np.arctan2(d[:, 1], d[:, 0])))
            np.testing.assert_allclose(angles, turn / (N - 1), atol=1e-9)


@pytest.mark.parametrize("kwargs, field", [
    ({"n_particles": 2}, "n_particles"),
    ({"n_particles": True}, "n_particles"),
    ({"segment_length": 0.1}, "segment_length"),
    ({"segment_length": -1}, "segment_length"),
    ({"target": "circle"}, "target"),
    ({"target": np.zeros((5, 2))}, "target"),
    ({"target": np.zeros((N, 3))}, "target"),
    ({"target": np.full((N, 2), np.nan)}, "target"),
    ({"target": np.full((N, 2), 0.5)}, "target"),
    ({"target": "line", "arc_angle": 0.0}, "arc_angle"),
    ({"damping": -1.0}, "damping"),
    ({"stiffness": float("inf")}, "stiffness"),
    ({"start_bend": 2.0}, "start_bend"),
    ({"start_region": 0.2}, "start_region"),
    ({"tolerance": 0}, "tolerance"),
    ({"render_mode": "human"}, "render_mode"),
])
def test_bad_kwargs_name_the_field(kwargs, field):
    with pytest.raises(ControlkitError, match=field):
        RopeEnv(**kwargs)


@pytest.mark.parametrize("options, field", [
    ({"target": np.zeros((N + 1, 2))}, "options.target"),
    ({"bend": np.zeros(3)}, "options.bend"),
    ({"rope": [0.0, 0.0]}, "options.rope"),
    ({"pusher": [0.5, 0.0]}, "options.pusher"),
    ({"ropes": [0.0, 0.0, 0.0]}, "options"),
])
def test_bad_reset_options_name_the_field(options, field):
    with pytest.raises(ControlkitError, match=field):
        RopeEnv().reset(seed=0, options=options)
