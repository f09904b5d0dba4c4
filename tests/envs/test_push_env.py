"""Push-v0 and Sort-v0: real MuJoCo physics, determinism, keep-out accounting, rendering, bad inputs."""

import gymnasium as gym
import numpy as np
import pytest
from controlkit.envs.push import OBS_GOAL, OBS_OBJECT, OBS_PUSHER, PushEnv
from controlkit.envs.sort import SortEnv
from gymnasium.utils.env_checker import check_env

import controlkit  # noqa: F401  registers the envs
from controlkit.core.errors import ControlkitError


def _run(env, seed, steps=15):
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    out = [obs]
    for _ in range(steps):
        obs, *_ = env.step(rng.uniform(-0.03, 0.03, 2))
        out.append(obs)
    return np.array(out)


@pytest.mark.parametrize("kwargs", [{}, {"shape": "t", "frame": "pusher"},
                                    {"obstacle": [-0.04, -0.04, 0.04, 0.04], "obstacle_crossing": True,
                                     "goal_distance": (0.24, 0.3)}])
def test_push_is_check_env_clean(kwargs):
    env = PushEnv(render_mode="rgb_array", **kwargs)
    check_env(env, skip_render_check=False)
    env.close()


def test_sort_is_check_env_clean():
    env = SortEnv(n_objects=2, render_mode="rgb_array")
    check_env(env, skip_render_check=False)
    env.close()


@pytest.mark.parametrize("make", [lambda: PushEnv(), lambda: SortEnv(n_objects=3)])
def test_same_seed_same_trajectory(make):
    a, b = _run(make(), 7), _run(make(), 7)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a[0], _run(make(), 8)[0])


def test_pusher_moves_the_object_and_friction_stops_it():
    env = PushEnv(terminate_on_success=False)
    obs, _ = env.reset(options={"object": [0.0, 0.0, 0.0], "pusher": [-0.09, 0.0], "goal": [0.1, 0.0, 0.0]})
    for _ in range(2):  # the pusher reaches the box's left face (x = -0.05) and pushes it along +x
        obs, *_ = env.step([0.03, 0.0])
    x_before = obs[0]
    for _ in range(3):
        obs, reward, *_ = env.step([0.03, 0.0])
    assert obs[0] > x_before + 0.07  # the box went along with the pusher
    assert abs(obs[1]) < 0.01  # a centred push keeps it on its line
    pushed = obs.copy()
    obs, *_ = env.step([-0.03, 0.0])  # pulling back: no contact, so the box stays where friction stopped it
    np.testing.assert_allclose(obs[OBS_OBJECT], pushed[OBS_OBJECT], atol=2e-3)
    assert np.abs(env.table.data.qvel[:2]).max() < 5e-3  # quasi-static: at rest at the end of a step


def test_far_pusher_leaves_the_object_alone():
    env = PushEnv()
    obs0, _ = env.reset(options={"object": [0.1, 0.1, 0.3], "pusher": [-0.2, -0.2]})
    obs, *_ = env.step([-0.03, 0.0])
    np.testing.assert_allclose(obs[OBS_OBJECT], obs0[OBS_OBJECT], atol=1e-4)
    np.testing.assert_allclose(obs[OBS_PUSHER], [-0.23, -0.2], atol=2e-3)


def test_info_reports_errors_and_success():
    env = PushEnv(position_tolerance=0.02, orientation_tolerance=0.3)
    _, info = env.reset(options={"object": [0.0, 0.0, 0.0], "goal": [0.01, 0.0, 0.1], "pusher": [0.2, 0.2]})
    assert info["position_error"] == pytest.approx(0.01, abs=1e-3)
    assert info["orientation_error"] == pytest.approx(0.1, abs=1e-3)
    assert info["success"]
    _, info = env.reset(options={"object": [0.0, 0.0, 0.0], "goal": [0.0, 0.0, 3.0], "pusher": [0.2, 0.2]})
    assert not info["success"] and info["orientation_error"] == pytest.approx(3.0, abs=1e-3)


def test_pusher_frame_is_relative_to_the_pusher():
    world, rel = PushEnv(frame="world"), PushEnv(frame="pusher")
    ow, _ = world.reset(seed=3)
    orl, _ = rel.reset(seed=3)
    p = ow[OBS_PUSHER]
    np.testing.assert_allclose(orl[0:2], ow[0:2] - p)
    np.testing.assert_allclose(orl[OBS_GOAL][:2], ow[OBS_GOAL][:2] - p)
    np.testing.assert_allclose(orl[OBS_PUSHER], p)
    assert PushEnv(goal_in_obs=False).reset(seed=0)[0].shape == (6,)


def test_keep_out_violations_are_counted_per_step():
    env = PushEnv(keep_out=[0.0, -0.05, 0.1, 0.05], start_region=0.2, terminate_on_success=False)
    obs, info = env.reset(options={"object": [-0.1, 0.0, 0.0], "pusher": [-0.19, 0.0], "goal": [-0.2, 0.15, 0]})
    assert info["keep_out_violations"] == 0
    inside = 0
    for _ in range(8):
        obs, _, _, _, info = env.step([0.03, 0.0])
        now = 0.0 <= obs[0] <= 0.1 and -0.05 <= obs[1] <= 0.05
        assert info["keep_out_violation"] == now
        inside += now
    assert inside > 0 and info["keep_out_violations"] == inside
    env.reset(seed=0)
    assert env.step([0.0, 0.0])[4]["keep_out_violations"] <= 1  # the count restarts with the episode


def test_keep_out_crossing_puts_the_box_in_the_way():
    from controlkit.envs.tabletop import in_rect

    box = np.array([-0.05, -0.05, 0.05, 0.05])
    env = PushEnv(keep_out=box.tolist(), keep_out_crossing=True, goal_distance=(0.24, 0.3), goal_in_obs=False)
    r = env.shape.radius
    starts = []
    for seed in range(20):
        _, info = env.reset(seed=seed)
        start, goal = env.state()[:2], env.goal[:2]
        assert in_rect(np.linspace(start, goal, 200), box).any()  # the straight push crosses the box
        for p in (start, goal):
            assert not in_rect(p, box + [-r, -r, r, r]) and np.abs(p).max() <= 0.3 - r
        assert 0.24 - 1e-9 <= np.linalg.norm(goal - start) <= 0.3 + 1e-9
        assert info["keep_out_violations"] == 0
        starts.append(start)
    assert len({tuple(np.round(s, 6)) for s in starts}) == 20  # seeded, and different per seed
    env.reset(seed=3)
    again = env.state()[:2]
    env.reset(seed=3)
    np.testing.assert_array_equal(env.state()[:2], again)


def test_obstacle_stops_a_straight_push_and_its_contacts_are_counted():
    """The obstacle is a real body: pushing the box straight at it stops the box at its face (the pusher too),
    and the steps ending in contact are counted; without the obstacle the same pushes carry the box through."""
    opts = {"object": [-0.15, 0.0, 0.0], "pusher": [-0.22, 0.0], "goal": [0.15, 0.0, 0.0]}
    ends = {}
    for obstacle in (None, [-0.04, -0.08, 0.04, 0.08]):
        env = PushEnv(obstacle=obstacle, terminate_on_success=False, goal_in_obs=False)
        _, info = env.reset(options=opts)
        assert info["obstacle_contacts"] == 0
        contacts = 0
        for _ in range(12):
            _, _, _, _, info = env.step([0.03, 0.0])
            contacts += info["obstacle_contact"]
        assert info["obstacle_contacts"] == contacts
        ends[obstacle is None] = (env.state(), contacts)
    free, blocked = ends[True], ends[False]
    assert free[1] == 0 and free[0][0] > 0.1  # through the middle of the table
    assert blocked[1] >= 3  # it rests against the face
    assert blocked[0][0] + 0.05 <= -0.04 + 0.005  # the box's front face stops at the obstacle's (within 5 mm)
    assert blocked[0][4] < -0.04  # and the pusher stays behind it


def test_obstacle_crossing_puts_the_obstacle_in_the_way():
    from controlkit.envs.tabletop import PUSHER_RADIUS, in_rect

    box = np.array([-0.04, -0.04, 0.04, 0.04])
    env = PushEnv(obstacle=box.tolist(), obstacle_crossing=True, goal_distance=(0.24, 0.3), goal_in_obs=False)
    r = env.shape.radius
    for seed in range(20):
        _, info = env.reset(seed=seed)
        start, goal, pusher = env.state()[:2], env.goal[:2], env.state()[4:6]
        assert in_rect(np.linspace(start, goal, 200), box).any()
        for p in (start, goal):
            assert not in_rect(p, box + [-r, -r, r, r])
        assert not in_rect(pusher, box + PUSHER_RADIUS * np.array([-1, -1, 1, 1]))
        assert info["obstacle_contacts"] == 0
    with pytest.raises(ControlkitError, match="options.pusher"):
        env.reset(options={"pusher": [0.0, 0.0]})


def test_sort_success_when_every_object_is_in_its_region():
    env = SortEnv(n_objects=2)
    centres = env.region_centres
    _, info = env.reset(options={"objects": [[*centres[0], 0.0], [*centres[1], 0.0]], "pusher": [0.0, 0.0]})
    assert info["success"] and info["n_sorted"] == 2 and info["distance"] == 0.0
    _, info = env.reset(options={"objects": [[*centres[1], 0.0], [*centres[0], 0.0]], "pusher": [0.0, 0.0]})
    assert not info["success"] and info["n_sorted"] == 0 and info["distance"] > 0.2


def test_rgb_array_rendering():
    env = gym.make("controlkit/Push-v0", render_mode="rgb_array", width=96, height=64)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (64, 96, 3) and frame.dtype == np.uint8 and frame.std() > 0
    env.close()


@pytest.mark.parametrize("kwargs, field", [
    ({"shape": "sphere"}, "shape"),
    ({"step_size": 0.0}, "step_size"),
    ({"step_size": -0.01}, "step_size"),
    ({"frame": "object"}, "frame"),
    ({"keep_out": [0.1, 0.0, 0.0, 0.1]}, "keep_out"),
    ({"keep_out": [0.0, 0.0, 0.5, 0.1]}, "keep_out"),
    ({"friction": 0}, "friction"),
    ({"keep_out_crossing": True}, "keep_out_crossing"),
    ({"obstacle": [0.1, 0.0, 0.0, 0.1]}, "obstacle"),
    ({"obstacle": [0.0, 0.0, 0.5, 0.1]}, "obstacle"),
    ({"obstacle_crossing": True}, "obstacle_crossing"),
    ({"obstacle": [-0.04, -0.04, 0.04, 0.04], "keep_out": [0.1, 0.1, 0.15, 0.15], "obstacle_crossing": True,
      "keep_out_crossing": True}, "obstacle_crossing"),
])
def test_bad_push_arguments_name_the_field(kwargs, field):
    with pytest.raises(ControlkitError, match=field):
        PushEnv(**kwargs)


def test_goal_outside_the_table_is_an_error():
    env = PushEnv()
    with pytest.raises(ControlkitError, match="options.goal"):
        env.reset(options={"goal": [0.5, 0.0, 0.0]})
    env.reset(seed=0)
    with pytest.raises(ControlkitError, match="action"):
        env.step([np.nan, 0.0])


@pytest.mark.parametrize("kwargs, field", [({"n_objects": 5}, "n_objects"), ({"n_objects": 1}, "n_objects"),
                                           ({"shape": "disc"}, "shape"), ({"region_size": 0.3}, "region_size")])
def test_bad_sort_arguments_name_the_field(kwargs, field):
    with pytest.raises(ControlkitError, match=field):
        SortEnv(**kwargs)
