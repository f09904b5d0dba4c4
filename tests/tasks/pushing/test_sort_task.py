"""Sort-v0's task layer: which box and where to (on real Sort-v0 states), the pusher's transit, a closed loop."""

import gymnasium as gym
import numpy as np
import pytest
from controlkit.envs.sort import SortEnv, regions
from controlkit.envs.tabletop import PUSHER_RADIUS, get_shape

import controlkit  # noqa: F401
from controlkit.core.errors import ControlkitError
from controlkit.tasks.pushing import CostConfig, PlannerSpec, Task, make_planner, run_episode
from controlkit.tasks.pushing.sort_task import Leg, SortSequencer, _segment_box_distance

BOX = get_shape("box")


def _sort(objects, pusher, n=3):
    env = SortEnv(n_objects=n, goal_in_obs=False)
    env.reset(seed=0, options={"objects": objects, "pusher": pusher})
    return env


def test_a_box_sitting_in_another_ones_region_is_moved_before_that_one_is_pushed_in():
    # Box 2 (region: lower left) sits in box 0's region (upper right); box 1 is sorted already.
    env = _sort([[0.0, 0.0, 0.0], [-0.19, 0.19, 0.0], [0.19, 0.19, 0.0]], [0.0, -0.15])
    seq = SortSequencer(BOX, env.regions)
    leg = seq.choose(env.table.object_poses(), env.table.pusher())
    assert not (leg.box == 0 and leg.final)
    # Control: with box 2 sorted instead, box 0's straight push into its region is the leg.
    env = _sort([[0.0, 0.0, 0.0], [-0.19, 0.19, 0.0], [-0.19, -0.19, 0.0]], [0.0, -0.15])
    seq.reset()
    leg = seq.choose(env.table.object_poses(), env.table.pusher())
    assert leg.box == 0 and leg.final
    np.testing.assert_allclose(leg.target, [0.19, 0.19])


def test_a_blocked_box_gets_a_staging_waypoint_round_the_box_in_the_way():
    # Box 0's straight path to its region passes right over box 1; box 1 is boxed in by nothing but far from home.
    env = _sort([[-0.1, -0.1, 0.0], [0.05, 0.05, np.pi / 2]], [-0.2, -0.2], n=2)
    seq = SortSequencer(BOX, env.regions)
    targets, cost = seq.costs(env.table.object_poses(), env.table.pusher(), 0)
    assert cost[1:].min() < cost[0]  # a detour beats pushing box 0 into box 1


def test_the_choice_is_kept_instead_of_dithering_between_boxes():
    env = _sort([[0.03, 0.0, 0.0], [-0.03, -0.08, 0.0]], [0.0, 0.2], n=2)
    seq = SortSequencer(BOX, env.regions)
    poses, pusher = env.table.object_poses(), env.table.pusher()
    first = seq.choose(poses, pusher)
    assert first.box == 0
    # Box 1 nudged towards its region: now (slightly) the cheaper one to start from, but within switch_margin.
    moved = poses.copy()
    moved[1, :2] += 0.05 * (env.region_centres[1] - moved[1, :2])
    assert SortSequencer(BOX, env.regions).choose(moved, pusher).box == 1  # a memoryless choice would switch
    assert seq.choose(moved, pusher).box == 0


def test_the_planners_aim_a_few_centimetres_ahead_on_the_leg_line():
    leg = Leg(0, np.array([0.2, 0.0]), True, np.array([0.0, 0.0]))
    np.testing.assert_allclose(leg.aim(np.array([0.05, 0.03]), 0.06), [0.11, 0.0])  # back on the line
    np.testing.assert_allclose(leg.aim(np.array([0.17, 0.0]), 0.06), [0.2, 0.0])  # the target itself at the end


def test_the_pusher_is_routed_round_a_box_in_the_way():
    # The pusher on the far side of box 1 from box 0's standoff point: the straight line crosses box 1.
    env = _sort([[-0.1, 0.0, 0.0], [0.05, 0.0, np.pi / 2]], [0.15, 0.0], n=2)
    seq = SortSequencer(BOX, env.regions)
    poses, pusher = env.table.object_poses(), env.table.pusher()
    aim = np.array([-0.19, 0.19])  # box 0 towards the upper left: the standoff point is lower right of it
    via = seq.pusher_via(poses, pusher, 0, aim)
    assert via is not None
    standoff = poses[0, :2] - seq.standoff_distance * (aim - poses[0, :2]) / np.linalg.norm(aim - poses[0, :2])
    straight = _segment_box_distance(pusher[None], standoff[None], poses, BOX)[0]
    assert straight.min() < PUSHER_RADIUS  # the direct line would hit a box
    route = _segment_box_distance(pusher[None], via[None], poses, BOX)[0]
    assert route.min() > PUSHER_RADIUS  # the first leg of the route touches none


def test_transit_moves_are_the_tasks_and_hold_the_box_in_the_planners_goal():
    env = _sort([[-0.1, 0.0, 0.0], [0.1, 0.1, 0.0], [0.1, -0.12, 0.0]], [0.2, -0.25])
    task = Task(env, CostConfig())
    task.reset()
    x, goal = task.state_goal()
    np.testing.assert_array_equal(goal[:4], x[:4])  # the box is to stay where it is
    move = task.applied(np.zeros(2, np.float32))
    assert np.abs(move).max() == pytest.approx(env.step_size)  # a full step along the route, not the planner's 0
    np.testing.assert_allclose(move / np.linalg.norm(move), (goal[4:6] - x[4:6]) / np.linalg.norm(goal[4:6] - x[4:6]),
                               atol=1e-6)


def test_push_task_is_untouched_by_the_sort_layer():
    from controlkit.envs.push import PushEnv

    env = PushEnv(goal_in_obs=False)
    env.reset(seed=3)
    task = Task(env, CostConfig())
    assert task.sequencer is None
    task.state_goal()
    action = np.array([0.01, -0.02], np.float32)
    assert task.applied(action) is action


def test_greedy_sorts_three_boxes_in_closed_loop_and_repeats_with_the_seed():
    env = gym.make("controlkit/Sort-v0", n_objects=3, goal_in_obs=False, max_episode_steps=120)
    task = Task(env.unwrapped, CostConfig(horizon=10, terminal_weight=5.0))
    greedy = make_planner("greedy", PlannerSpec(type="greedy"), None, task, seed=0)
    # 10000 is the experiment's first episode: the first-unsorted-box rule left every planner at 0.48 m or worse.
    first = run_episode(env, task, greedy, seed=10000)
    again = run_episode(env, task, greedy, seed=10000)
    assert first.success and first.final_distance == 0.0 and len(first.step_times) < 120
    np.testing.assert_array_equal(first.states, again.states)


@pytest.mark.parametrize("kwargs, field", [
    ({"clearance": 0.0}, "clearance"), ({"lookahead": -0.01}, "lookahead"), ({"block_weight": float("nan")},
                                                                            "block_weight"),
    ({"patience": 0}, "patience"), ({"grid": 2.5}, "grid"), ({"reach": "far"}, "reach"),
])
def test_bad_sequencer_arguments_name_the_field(kwargs, field):
    with pytest.raises(ControlkitError, match=field):
        SortSequencer(BOX, regions(3, 0.12), **kwargs)


def test_the_pusher_finds_its_way_out_of_a_pocket_without_touching_a_box():
    # A state of three-box episode 10001 in development: the pusher on the left, box 2's standoff point in the
    # gap between box 2, box 0 and the right table edge; no straight line or single waypoint reaches it.
    env = _sort([[0.175, 0.169, np.radians(-103)], [-0.196, 0.165, np.radians(122)],
                 [0.180, 0.061, np.radians(-138)]], [-0.203, 0.087])
    seq = SortSequencer(BOX, env.regions)
    poses, pusher = env.table.object_poses(), env.table.pusher()
    region = env.region_centres[2]
    aim = poses[2, :2] + 0.06 * (region - poses[2, :2]) / np.linalg.norm(region - poses[2, :2])
    start_gap = _segment_box_distance(pusher[None], pusher[None], poses, BOX).min() - PUSHER_RADIUS
    for _ in range(60):  # follow the transit moves kinematically (the boxes stay put when nothing touches them)
        via = seq.pusher_via(poses, pusher, 2, aim)
        if via is None:
            break
        d = via - pusher
        new = pusher + d * min(1.0, 0.03 / np.abs(d).max())
        gap = _segment_box_distance(pusher[None], new[None], poses, BOX).min() - PUSHER_RADIUS
        assert gap >= min(0.008, start_gap) - 1e-6
        pusher = new
    else:
        pytest.fail("the pusher never reached the standoff point")
    standoff = poses[2, :2] - seq.standoff_distance * (aim - poses[2, :2]) / np.linalg.norm(aim - poses[2, :2])
    assert np.linalg.norm(pusher - standoff) < seq.reach
