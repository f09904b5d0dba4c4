"""The obstacle task's diagnosis and search in the loop: the simulator meets the obstacle, the summary marks
wall-clock-limited plans and counts the steps on which the MILP side beat the candidate starts."""

import gymnasium as gym
import numpy as np
from controlkit.envs.push import PushEnv

import controlkit  # noqa: F401
from controlkit.models.network import CompactNetwork
from controlkit.tasks.pushing import CostConfig, PlannerSpec, SimDynamics, Task, make_planner, run_episode, summarise

OBSTACLE = [-0.04, -0.04, 0.04, 0.04]


def test_sim_dynamics_meets_the_obstacle_as_the_env_does():
    env = PushEnv(goal_in_obs=False, terminate_on_success=False, obstacle=OBSTACLE)
    env.reset(options={"object": [-0.14, 0.0, 0.0], "goal": [0.2, 0.0, 0.0], "pusher": [-0.22, 0.0]})
    actions = np.tile([0.03, 0.0], (6, 1))
    blocked = SimDynamics(env.shape, env.friction, OBSTACLE).rollout(env.state(), actions)
    free = SimDynamics(env.shape, env.friction).rollout(env.state(), actions)
    real = np.array([env.state()] + [env.step(a)[0] for a in actions])
    np.testing.assert_allclose(blocked, real, atol=1e-4)
    assert blocked[-1, 0] < -0.04 - 0.05 + 1e-3  # the box (half-length 5 cm) stops at the obstacle's face
    assert free[-1, 0] > blocked[-1, 0] + 0.03  # on the free table it goes on


def _net():
    rng = np.random.default_rng(5)
    sizes = [8, 4, 6]
    return CompactNetwork([rng.normal(size=(b, a)) * 0.05 for a, b in zip(sizes, sizes[1:])],
                          [rng.normal(size=b) * 0.01 for b in sizes[1:]], [np.ones(4, bool)], 6, 2, residual=True)


def test_summary_marks_wall_clock_limited_plans_and_a_work_limited_mode_has_none():
    env = gym.make("controlkit/Push-v0", max_episode_steps=3, goal_in_obs=False, obstacle=OBSTACLE,
                   obstacle_crossing=True, goal_distance=[0.24, 0.3])
    task = Task(env.unwrapped, CostConfig(horizon=3, keep_out_margin=0.05, keep_out_penalty=1000.0,
                                          keep_out_route=0.02))
    common = dict(type="mip_mpc", starts=["safe", "greedy"], warm_samples=16, warm_iterations=2)
    work = PlannerSpec(**common, time_limit=None, tighten_steps=0, polish_lps=5, polish_starts=2, search="window",
                       search_size=1, search_slices=2, search_nodes=20, branch_and_bound=False)
    timed = PlannerSpec(**common, time_limit=0.5)
    runs = {}
    for name, spec in (("work", work), ("timed", timed), ("starts_only", PlannerSpec(**{**common,
                                                                                        "type": "starts_only"}))):
        planner = make_planner(name, spec, _net(), task, seed=0)
        runs[name] = [run_episode(env, task, planner, seed) for seed in (1, 2)]
    s = {name: summarise(eps) for name, eps in runs.items()}
    assert s["work"]["time_limited_steps"] == 0
    assert s["timed"]["time_limited_steps"] == sum(len(e.step_times) - e.fallbacks for e in runs["timed"]) > 0
    assert s["starts_only"]["improved_steps"] == 0  # the candidates as they are: nothing beats the best of them
    for name in ("work", "timed"):
        assert 0 <= s[name]["improved_steps"] <= 6
    # the work-limited mode repeats itself exactly
    again = make_planner("work", work, _net(), task, seed=0)
    eps = [run_episode(env, task, again, seed) for seed in (1, 2)]
    for a, b in zip(eps, runs["work"]):
        np.testing.assert_array_equal(a.states, b.states)
    env.close()
