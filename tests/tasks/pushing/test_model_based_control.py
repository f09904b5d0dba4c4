"""The model_based_control pipeline: frame folding, model files, the planning task, a tiny end-to-end run."""

import json
from pathlib import Path

import numpy as np
import pytest
from controlkit.envs.push import PushEnv

import controlkit  # noqa: F401
from controlkit.core.errors import ControlkitError
from controlkit.models.network import CompactNetwork
from controlkit.runner.registry import validate_config
from controlkit.runner.run import run_experiment
from controlkit.tasks.pushing import (
    CostConfig,
    Task,
    fold_frame,
    frame_matrix,
    load_network,
)

TINY = {
    "kind": "model_based_control", "name": "tiny", "seed": 0,
    "data": {"trajectories": 12, "steps": 10}, "model": {"hidden": [12, 12]},
    "train": {"epochs": 2, "eval_steps": 3, "rollout_steps": 2},
    "sparsify": {"schedule": [6], "search_epochs": 1, "finetune_epochs": 1},
    "cost": {"horizon": 3},
    "planners": {"mip_mpc": {"type": "mip_mpc", "time_limit": 0.5}, "mppi": {"type": "mppi", "n_samples": 32,
                                                                            "iterations": 2}},
    "episodes": 2, "max_steps": 3, "frames": False,
}


def _random_net(seed=0, nx=6, nu=2):
    rng = np.random.default_rng(seed)
    sizes = [nx + nu, 10, 7, nx]
    return CompactNetwork([rng.normal(size=(b, a)) * 0.3 for a, b in zip(sizes, sizes[1:])],
                          [rng.normal(size=b) * 0.1 for b in sizes[1:]],
                          [rng.random(10) < 0.5, rng.random(7) < 0.5], nx, nu, residual=True)


def test_folding_the_pusher_frame_gives_the_world_frame_model():
    net, t = _random_net(), frame_matrix()
    world = fold_frame(net, t)
    rng = np.random.default_rng(1)
    x, u = rng.normal(size=(20, 6)), rng.normal(size=(20, 2))
    z_next = net.step(x @ t.T, u)  # the learned model lives on z = T x
    np.testing.assert_allclose(world.step(x, u), z_next @ np.linalg.inv(t).T, atol=1e-12)
    assert world.n_relu == net.n_relu and world.hidden_sizes == net.hidden_sizes


def test_model_file_round_trip_and_dimension_check(tmp_path):
    net = _random_net()
    path = net.save(tmp_path / "m.npz")
    back = load_network(path)
    x, u = np.ones(6), np.ones(2)
    np.testing.assert_array_equal(back.step(x, u), net.step(x, u))
    _random_net(nx=4).save(tmp_path / "small.npz")
    with pytest.raises(ControlkitError, match="model.file.*4 states"):
        load_network(tmp_path / "small.npz")
    with pytest.raises(ControlkitError, match="model.file"):
        load_network(tmp_path / "missing.npz")


def test_task_goal_puts_the_pusher_behind_the_object():
    env = PushEnv(goal_in_obs=False)
    env.reset(options={"object": [0.0, 0.0, 0.0], "goal": [0.1, 0.0, 0.5], "pusher": [0.0, 0.1]})
    x, goal = Task(env, CostConfig()).state_goal()
    np.testing.assert_allclose(x, [0, 0, 1, 0, 0, 0.1], atol=1e-6)
    np.testing.assert_allclose(goal[:4], [0.1, 0.0, np.cos(0.5), np.sin(0.5)])
    assert goal[4] < -env.shape.radius and abs(goal[5]) < 1e-6  # on the far side from the goal


def test_tiny_pipeline_end_to_end(tmp_path):
    result = run_experiment(validate_config(TINY), out=tmp_path, quiet=True)
    s = json.loads((result.run_dir / "summary.json").read_text())
    for name in ("mip_mpc", "mppi"):
        c = s["controllers"][name]
        for key in ("success_rate", "final_distance_mean", "final_distance_ci95", "step_time_median_s",
                    "step_time_p95_s", "fallbacks", "violations"):
            assert key in c
        assert 0 <= c["success_rate"] <= 1 and c["final_distance_mean"] >= 0
        assert 0 <= c["prediction_error_median"] <= c["prediction_error_p90"] < 0.5  # the real object vs its plan
    assert s["model"]["n_relu"] <= 6
    for png in ("trajectories.png", "distance.png", "step_times.png"):
        assert (result.run_dir / png).stat().st_size > 1000
    # The saved model drives a second run without learning, and the episodes start from the same states.
    again = dict(TINY, model={"hidden": [12, 12], "file": str(result.run_dir / "model.npz")},
                 planners={"mppi": TINY["planners"]["mppi"]})
    s2 = run_experiment(validate_config(again), out=tmp_path, quiet=True).summary
    assert s2["seeds"] == s["seeds"]
    assert s2["controllers"]["mppi"]["final_distance_mean"] == pytest.approx(s["controllers"]["mppi"]["final_distance_mean"])


def test_keep_out_violations_are_reported_per_planner(tmp_path):
    cfg = dict(TINY, env_kwargs={"keep_out": [-0.05, -0.05, 0.05, 0.05], "start_region": 0.2},
               planners={"random": {"type": "random", "n_samples": 16}}, max_steps=4)
    result = run_experiment(validate_config(cfg), out=tmp_path, quiet=True)
    rows = (result.run_dir / "metrics.csv").read_text().splitlines()
    col = rows[0].split(",").index("violations")
    assert result.summary["controllers"]["random"]["violations"] == sum(int(r.split(",")[col]) for r in rows[1:])
    assert 0 <= result.summary["controllers"]["random"]["planned_violations"] <= 2 * 4


@pytest.mark.parametrize("patch, field", [
    ({"planners": {"p": {"type": "ilqr"}}}, "planners.p.type"),
    ({"env": "Pendulum-v1"}, "env"),
    ({"env_kwargs": {"goal_in_obs": True}}, "goal_in_obs"),
    ({"sparsify": {"schedule": [100]}}, "sparsify.schedule"),
    ({"cost": {"keep_out_route": 0.02}}, "cost.keep_out_route needs a keep-out box"),
    ({"cost": {"keep_out_penalty": 1000.0}}, "cost.keep_out_penalty needs a keep-out box"),
    ({"cost": {"keep_out_penalty": 0.0}, "env_kwargs": {"keep_out": [-0.05, -0.05, 0.05, 0.05]}},
     "cost.keep_out_penalty"),
    ({"env_kwargs": {"keep_out": [-0.05, -0.05, 0.05, 0.05], "obstacle": [0.1, 0.1, 0.15, 0.15]}},
     "keep_out or obstacle, not both"),
    ({"planners": {"s": {"type": "starts_only", "time_limt": 0.1}}}, "planners.s: starts_only takes no time_limt"),
])
def test_bad_config_names_the_field(patch, field):
    with pytest.raises(ControlkitError, match=field):
        validate_config({**TINY, **patch})


def test_bad_planner_knob_names_the_planner_before_anything_runs():
    cfg = dict(TINY, planners={"mine": {"type": "cem", "n_sampels": 10}})
    with pytest.raises(ControlkitError, match="planners.mine: cem takes no n_sampels; valid: .*n_samples"):
        validate_config(cfg)


def test_warm_started_mip_is_never_worse_than_its_mppi_start():
    from controlkit.tasks.pushing import PlannerSpec, make_planner

    env = PushEnv(goal_in_obs=False)
    env.reset(options={"object": [0.0, 0.0, 0.0], "goal": [0.08, 0.0, 0.0], "pusher": [-0.07, 0.0]})
    task = Task(env, CostConfig(horizon=3))
    net = _small_push_net()
    mip = make_planner("m", PlannerSpec(type="mip_mpc", time_limit=2.0, warm_samples=64), net, task, seed=0)
    mip.reset(seed=0)
    x, goal = task.state_goal()
    start = mip._helper.plan(x, goal, warm_start=np.zeros((3, 2)))
    mip._helper.reset(seed=0)
    plan = mip.plan(x, goal, warm_start=np.zeros((3, 2)))
    assert plan.objective <= start.objective + 1e-6
    with pytest.raises(ControlkitError, match="warm_samples"):
        make_planner("m", PlannerSpec(type="mip_mpc", warm_samples=-1), net, task, seed=0)


def _small_push_net():
    """A 6-state network with a handful of ReLUs, small enough for HiGHS to solve within the test."""
    rng = np.random.default_rng(5)
    sizes = [8, 4, 6]
    return CompactNetwork([rng.normal(size=(b, a)) * 0.05 for a, b in zip(sizes, sizes[1:])],
                          [rng.normal(size=b) * 0.01 for b in sizes[1:]], [np.ones(4, bool)], 6, 2, residual=True)


def test_sim_dynamics_reproduces_the_env_step():
    from controlkit.tasks.pushing.greedy import SimDynamics

    env = PushEnv(goal_in_obs=False, terminate_on_success=False)
    env.reset(options={"object": [0.0, 0.0, 0.3], "goal": [0.1, 0.0, 0.0], "pusher": [-0.08, 0.0]})
    actions = np.array([[0.03, 0.0], [0.03, 0.005], [0.02, -0.01]])
    sim = SimDynamics(env.shape, env.friction).rollout(env.state(), actions)
    real = [env.state()] + [env.step(a)[0] for a in actions]
    np.testing.assert_allclose(sim, np.array(real), atol=1e-4)
    assert np.linalg.norm(real[-1][:2] - real[0][:2]) > 0.02  # the pusher did push the box


def test_greedy_pusher_goes_round_the_box_and_pushes_it_to_the_goal(greedy_episode):
    env = PushEnv(goal_in_obs=False, orientation_tolerance=3.1416)
    # The pusher starts on the goal side: it must go round the box before it can push.
    env.reset(options={"object": [0.0, 0.0, 0.0], "goal": [0.1, 0.05, 0.0], "pusher": [0.08, 0.04]})
    info = greedy_episode(env)
    assert info["success"], info["position_error"]


def test_push_through_data_makes_contact():
    from controlkit.models.data import collect
    from controlkit.tasks.pushing.greedy import PushThroughExplorer

    data = collect("controlkit/Push-v0", 6, 15, seed=0, behaviour=PushThroughExplorer("box", 0.03),
                   env_kwargs={"goal_in_obs": False, "terminate_on_success": False})
    moved = np.linalg.norm(data.states[:, -1, :2] - data.states[:, 0, :2], axis=1)
    assert (moved > 0.03).mean() >= 0.5  # most episodes push the object several centimetres
    again = collect("controlkit/Push-v0", 6, 15, seed=0, behaviour=PushThroughExplorer("box", 0.03),
                    env_kwargs={"goal_in_obs": False, "terminate_on_success": False})
    np.testing.assert_array_equal(data.states, again.states)


def test_sim_mppi_is_refused_on_sort():
    cfg = dict(TINY, env="controlkit/Sort-v0", env_kwargs={"n_objects": 2},
               planners={"oracle": {"type": "sim_mppi", "n_samples": 4, "iterations": 1}})
    with pytest.raises(ControlkitError, match="planners.oracle: sim_mppi"):
        validate_config(cfg)


def test_mip_start_stays_feasible_when_the_model_drifts_cos_past_one():
    """A learned model predicts cos θ slightly beyond ±1; the pipeline's state box must still admit its rollouts,
    or every MIP start is infeasible and MIP-MPC falls back to the safe action for the whole episode."""
    from controlkit.tasks.pushing import PlannerSpec, make_planner

    env = PushEnv(goal_in_obs=False)
    env.reset(options={"object": [0.0, 0.0, 0.0], "goal": [0.08, 0.0, 0.0], "pusher": [-0.07, 0.0]})
    task = Task(env, CostConfig(horizon=3))
    drift = np.zeros(6)
    drift[2] = 1e-3  # cos θ grows by 1e-3 per step, whatever the input
    net = CompactNetwork([np.zeros((4, 8)), np.zeros((6, 4))], [np.zeros(4), drift], [np.ones(4, bool)], 6, 2,
                         residual=True)
    mip = make_planner("m", PlannerSpec(type="mip_mpc", time_limit=2.0), net, task, seed=0)
    x, goal = task.state_goal()
    assert x[2] == pytest.approx(1.0)
    plan = mip.plan(x, goal, warm_start=np.zeros((3, 2)))
    assert plan.status.value in ("ok", "suboptimal") and plan.states[-1, 2] > 1.0


def _keep_out_task(**cost):
    env = PushEnv(goal_in_obs=False, keep_out=[-0.05, -0.05, 0.05, 0.05])
    # the object (which may not start within its radius of the square) inside the planners' square grown by
    # 7 cm, the goal beyond it
    env.reset(options={"object": [-0.11, 0.0, 0.0], "goal": [0.2, 0.0, 0.0], "pusher": [-0.25, 0.1]})
    return Task(env, CostConfig(horizon=5, terminal_weight=5.0, keep_out_margin=0.07, **cost))


@pytest.mark.parametrize("penalty", [None, 1000.0])
def test_soft_keep_out_gives_a_plan_where_the_hard_one_has_none(penalty):
    from controlkit.tasks.pushing import PlannerSpec, make_planner

    task = _keep_out_task(keep_out_penalty=penalty)
    net = load_network(Path(__file__).parents[2] / "data/push_16relu_model.npz")
    mip = make_planner("m", PlannerSpec(type="mip_mpc", time_limit=0.5, starts=["safe"]), net, task, seed=0)
    x, goal = task.state_goal()
    mip.set_goal(goal)
    mip.act(x)
    if penalty is None:  # the object cannot leave the grown square in one step: no plan, a fallback
        assert mip.last_step.fallback == "best_start"
    else:  # priced: a plan, which pays for the depth it cannot avoid
        assert mip.last_step.fallback is None and mip.last_plan.extras["violation"] > 0


def test_task_routes_the_target_round_the_keep_out_box():
    x, goal = _keep_out_task().state_goal()
    np.testing.assert_allclose(goal[:2], [0.2, 0.0])  # no routing: the goal, straight through the square
    x, goal = _keep_out_task(keep_out_route=0.02).state_goal()
    # inside the planners' square [-0.12, 0.12]^2: out of it by its nearest side, then round a corner 2 cm beyond
    assert np.allclose(np.abs(goal[:2]), [0.14, 0.14]) and goal[0] < 0
    assert goal[4] > x[0]  # the pusher goes to the side away from that target


def test_obstacle_run_reports_contacts_and_the_planners_avoid_the_grown_obstacle(tmp_path):
    """The pipeline on the obstacle option: the planners' box is the obstacle grown by the margin, the run counts
    steps with the object against the obstacle per planner, and starts_only runs as a planner type."""
    env = PushEnv(goal_in_obs=False, obstacle=[-0.04, -0.04, 0.04, 0.04])
    task = Task(env, CostConfig(horizon=3, keep_out_margin=0.05, keep_out_penalty=1000.0))
    box, pusher = task.keep_out_boxes()  # the object's centre, and the pusher (the model does not know the obstacle)
    assert box.coords == (0, 1) and pusher.coords == (4, 5) and pusher.penalty == box.penalty == 1000.0
    np.testing.assert_allclose([*box.low, *box.high], [-0.09, -0.09, 0.09, 0.09])
    np.testing.assert_allclose([*pusher.low, *pusher.high], [-0.06, -0.06, 0.06, 0.06])
    from controlkit.tasks.pushing import PlannerSpec, make_planner

    mppi = make_planner("m", PlannerSpec(type="mppi", n_samples=8), _random_net(), task, seed=0)
    assert [k.coords for k in mppi.problem.keep_out] == [(0, 1), (4, 5)]
    keep = Task(PushEnv(goal_in_obs=False, keep_out=[-0.04, -0.04, 0.04, 0.04]), CostConfig(horizon=3))
    assert len(keep.keep_out_boxes()) == 1  # a keep-out box is a rule for the object only
    cfg = dict(TINY, env_kwargs={"obstacle": [-0.04, -0.04, 0.04, 0.04], "obstacle_crossing": True,
                                 "goal_distance": [0.24, 0.3]},
               cost={"horizon": 3, "keep_out_margin": 0.05, "keep_out_penalty": 1000.0, "keep_out_route": 0.02},
               planners={"starts_only": {"type": "starts_only", "starts": ["safe", "greedy"]},
                         "greedy": {"type": "greedy"}}, max_steps=4)
    result = run_experiment(validate_config(cfg), out=tmp_path, quiet=True)
    for name in ("starts_only", "greedy"):
        c = result.summary["controllers"][name]
        assert 0 <= c["obstacle_contacts"] <= 2 * 4 and c["fallbacks"] == 0
    assert result.summary["controllers"]["starts_only"]["prediction_error_median"] is not None
