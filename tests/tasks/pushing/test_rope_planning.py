"""Planning on the rope's particle-graph model: the goal over all particles, MIP-MPC (candidate starts + the
MILP), MPPI and CEM on the compiled rope in closed loop on Rope-v0, the model/env checks."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from controlkit.envs.rope import shape_error

import controlkit  # noqa: F401  (registers controlkit/*)
from controlkit.core.errors import ControlkitError
from controlkit.models.dynamics import TrainSettings, fit
from controlkit.models.graph_training import export_graph
from controlkit.tasks.pushing import run_episode
from controlkit.tasks.pushing.rope_data import ENV_ID, as_graph_states, collect_rope_data, rope_graph_model
from controlkit.tasks.pushing.rope_task import RopeTask, check_rope_env, make_rope_planner, rope_goal

N, SEG = 5, 0.03
ENV_KW = {"n_particles": N, "segment_length": SEG}


@pytest.fixture(scope="module")
def graph():
    """A small rope model trained on real rope data (sparsified by hand: some neurons identity, some removed)."""
    data = collect_rope_data(8, 8, seed=0, env_kwargs=ENV_KW)
    model = rope_graph_model(data, N, radius=0.038, hidden=8, message_size=4, seed=0, pusher_radius=0.1,
                             fixed_graph=True)
    fit(model, data, data, TrainSettings(epochs=8, batch_size=32, lr=1e-2, rollout_weight=0.0, eval_steps=3), seed=1)
    modes = [np.array([0, 0, 0, 1, 0, 2, 0, 2]), np.array([0, 0, 1, 0, 2, 0, 0, 2])]
    return export_graph(model, modes, metadata={"env": ENV_ID, "n_particles": N, "segment_length": SEG})


@pytest.fixture
def env():
    e = gym.make(ENV_ID, goal_in_obs=False, max_episode_steps=4, **ENV_KW)
    yield e
    e.close()


def test_goal_orders_the_target_and_puts_the_pusher_behind_the_worst_particle():
    pts = np.column_stack([np.arange(N) * SEG, np.zeros(N)])
    x = as_graph_states(np.concatenate([pts.ravel(), [0.0, 0.1]]), N)
    target = pts[::-1] + [0.0, 0.05]  # the same line 5 cm up, listed from the other end
    target[0, 1] += 0.03  # the last particle has the farthest to go
    goal = rope_goal(x, target)
    nodes = goal[: 4 * N].reshape(N, 4)
    np.testing.assert_allclose(nodes[:, :2], target[::-1])  # reversed: the order nearer the rope
    np.testing.assert_allclose(nodes[:, 2:], np.tile([1.0, 0.0], (N, 1)))
    assert np.isclose(shape_error(nodes[:, :2], target), 0.0)
    behind = goal[-2:] - pts[-1]  # pusher goal below the last particle (its target is above it)
    assert behind[1] < -0.01 and abs(behind[0]) < 1e-9
    with pytest.raises(ControlkitError, match=r"target: need shape \(5, 2\)"):
        rope_goal(x, np.zeros((N + 1, 2)))


def test_mip_mpc_plans_on_the_compiled_rope_and_never_costs_more_than_its_mppi_start(graph, env):
    task = RopeTask(env.unwrapped)
    env.reset(seed=3)
    x, goal = task.state_goal()
    off = {"presolve": "off", "mip_heuristic_run_rins": False, "mip_heuristic_run_rens": False,
           "mip_heuristic_effort": 0.0, "mip_heuristic_run_feasibility_jump": False}
    mip = make_rope_planner("mip_mpc", graph, env.unwrapped, horizon=2, starts=["safe"], warm_samples=100,
                            warm_iterations=3, time_limit=None, tighten_steps=0, polish_lps=10,
                            highs_options={**off, "mip_max_nodes": 1})
    mip.reset(seed=0)
    plan = mip.plan(x, goal)
    assert plan.status.value in ("ok", "suboptimal") and plan.extras["binaries"] > 0
    assert plan.extras["polish_lps"] >= 1 and "Solution limit" in plan.extras["message"]  # descent, then 1 node
    assert N * (N - 1) > len(plan.extras["edges"]) >= 2 * (N - 1)  # the chain's neighbours (fixed for the plan)
    # the MILP's predicted rollout is the graph model's own rollout of the plan on the plan's edges
    edges = [tuple(e) for e in plan.extras["edges"]]
    assert plan.extras["pusher_edges"] == graph.pusher_edges(x) and 0 < len(plan.extras["pusher_edges"]) < N
    xs = [x]
    for a in plan.actions:
        xs.append(graph.step(xs[-1], a, edges=edges, pusher_edges=plan.extras["pusher_edges"]))
    np.testing.assert_allclose(plan.states, np.array(xs), atol=1e-6)
    scores = plan.extras["start_scores"]
    assert plan.objective <= scores["mppi"] + 1e-6 and plan.objective <= scores["safe"] + 1e-6


@pytest.mark.parametrize("kind, knobs", [
    ("mip_mpc", dict(starts=["safe"], warm_samples=50, warm_iterations=2, time_limit=None, tighten_steps=0,
                     polish_lps=10, branch_and_bound=False)),
    ("mppi", dict(n_samples=100, iterations=2)),
    ("cem", dict(n_samples=60, iterations=3)),
])
def test_planners_run_closed_loop_on_rope_v0_and_repeat_with_the_seed(graph, env, kind, knobs):
    task = RopeTask(env.unwrapped)
    planner = make_rope_planner(kind, graph, env.unwrapped, horizon=3, **knobs)
    a = run_episode(env, task, planner, seed=11)
    b = run_episode(env, task, planner, seed=11)
    assert len(a.step_times) == 4 and a.fallbacks == 0
    assert a.distances[0] == pytest.approx(shape_error(a.states[0][: 2 * N].reshape(N, 2), env.unwrapped.target))
    np.testing.assert_array_equal(a.states, b.states)  # same seed, same episode (deterministic limits only)


def test_a_model_of_another_rope_or_env_is_refused(graph):
    other = gym.make(ENV_ID, n_particles=N + 1, segment_length=SEG)
    with pytest.raises(ControlkitError, match="env_kwargs.n_particles=6"):
        check_rope_env(graph, other.unwrapped)
    longer = gym.make(ENV_ID, n_particles=N, segment_length=0.035)
    with pytest.raises(ControlkitError, match="env_kwargs.segment_length"):
        make_rope_planner("mppi", graph, longer.unwrapped)
    sort = gym.make("controlkit/Sort-v0", n_objects=2)
    with pytest.raises(ControlkitError, match="env: a rope graph model plans on controlkit/Rope-v0"):
        check_rope_env(graph, sort.unwrapped)
    boxes = export_graph(rope_graph_model_untrained(), metadata={"env": "controlkit/Sort-v0"})
    with pytest.raises(ControlkitError, match="model.file: the graph model was trained on 'controlkit/Sort-v0'"):
        check_rope_env(boxes, other.unwrapped)
    with pytest.raises(ControlkitError, match="model.file: need a graph model"):
        check_rope_env(object(), other.unwrapped)
    for e in (other, longer, sort):
        e.close()


def rope_graph_model_untrained():
    from controlkit.models.graph_training import GraphDynamics

    m = GraphDynamics(message_hidden=[4], update_hidden=[4], message_size=2)
    with torch.no_grad():
        m.out_scale.fill_(0.01)
    return m
