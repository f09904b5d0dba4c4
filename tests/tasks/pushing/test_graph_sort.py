"""Sorting on the graph model: data with 2-4 boxes, sparsification of the shared MLPs, every planner kind on
Sort-v0, the goal over all boxes, and bad input."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from controlkit.envs.sort import regions

import controlkit  # noqa: F401
from controlkit.core.controller import Status
from controlkit.core.errors import ControlkitError
from controlkit.models.dynamics import TrainSettings, fit, rollout_mse
from controlkit.models.graph import pad_states, unpad_states
from controlkit.models.graph_training import GraphDynamics, export_graph
from controlkit.models.sparsify import SparsifySettings, fixed_gates, sparsify
from controlkit.tasks.pushing import run_episode
from controlkit.tasks.pushing.graph_sort import (
    GraphSortTask,
    check_graph_env,
    collect_sort_data,
    make_graph_planner,
    sort_goal,
    sort_weights,
)


@pytest.fixture(scope="module")
def data():
    return collect_sort_data((2, 3, 4), trajectories=2, steps=12, seed=3)


def test_data_mixes_box_counts_padded(data):
    assert data.states.shape == (6, 13, 18)
    assert np.all(data.states[:2, :, 8:16] == 0)  # two boxes: rows 2 and 3 are padding
    assert np.all(np.abs(data.states[4:, 0, 14:16]).sum(-1) > 0.5)  # four boxes: all present
    again = collect_sort_data((2, 3, 4), trajectories=2, steps=12, seed=3)
    np.testing.assert_array_equal(again.states, data.states)


def test_sparsify_the_shared_mlps_and_export(data):
    torch.manual_seed(0)
    train, val = data.split(0.34, seed=0)
    settings = TrainSettings(epochs=2, batch_size=32, rollout_steps=3, eval_steps=5)
    m = GraphDynamics(message_hidden=[8], update_hidden=[8], message_size=4, seed=0)
    m.fit_normalisation(train)
    fit(m, train, val, settings, seed=1)
    result = sparsify(m, train, val, SparsifySettings(schedule=[8, 4], search_epochs=1, finetune_epochs=1),
                      settings, seed=2)
    assert [r.n_relu for r in result.rounds] == [16, 8, 4]
    last = result.rounds[-1]
    m.load_state_dict(last.state)
    g = export_graph(m, last.modes)
    assert g.n_relu == 4
    # the exported, compiled model is the gated torch model (float32 training, float64 export)
    x = unpad_states(data.states[3, 5], 3)
    u = data.actions[3, 5]
    ref = m.double().step(torch.as_tensor(pad_states(x, 3)[None]), torch.as_tensor(u[None]),
                          fixed_gates(last.modes, torch.float64))[0].detach().numpy()
    np.testing.assert_allclose(g.compact(3, g.edges(x)).step(x, u), unpad_states(ref, 3), atol=1e-9)
    assert np.isfinite(rollout_mse(m.float(), val, 5, fixed_gates(last.modes)))


def tiny_graph():
    m = GraphDynamics(message_hidden=[3], update_hidden=[3], message_size=2, seed=4).double()
    with torch.no_grad():
        m.out_scale.copy_(torch.tensor([0.005, 0.005, 0.02, 0.02]))
        m.pusher.weight.copy_(m.u_scale * torch.eye(2))
        m.pusher.bias.zero_()
    return export_graph(m, metadata={"env": "controlkit/Sort-v0", "shape": "box"})


@pytest.mark.parametrize("kind", ["mip_mpc", "mppi", "cem", "gradient", "random"])
def test_every_planner_kind_sorts_on_the_graph_model(kind):
    env = gym.make("controlkit/Sort-v0", n_objects=2, goal_in_obs=False, max_episode_steps=3)
    knobs = {"mip_mpc": dict(time_limit=None, mip_gap=0.5, starts=["safe"], warm_samples=20, warm_iterations=2),
             "mppi": dict(n_samples=20, iterations=2), "cem": dict(n_samples=20, iterations=2),
             "gradient": dict(iterations=3, n_restarts=2), "random": dict(n_samples=20)}[kind]
    planner = make_graph_planner(kind, tiny_graph(), env.unwrapped, horizon=2, **knobs)
    task = GraphSortTask(env.unwrapped)
    ep = run_episode(env, task, planner, seed=1)
    assert len(ep.step_times) == 3 and ep.fallbacks == 0
    assert set(ep.statuses) <= {Status.OK.value, Status.SUBOPTIMAL.value}
    plan = planner.last_plan
    assert plan.states.shape == (3, 10) and np.all(np.abs(plan.actions) <= 0.03 + 1e-9)


def test_sort_goal_covers_every_box():
    reg = regions(3, 0.12)
    centres = (reg[:, :2] + reg[:, 2:]) / 2
    x = np.array([*centres[0], 1, 0, 0.0, 0.0, 1, 0, 0.05, -0.05, 1, 0, 0.0, -0.1])
    goal, box = sort_goal(x, reg)
    np.testing.assert_allclose(goal[[0, 1, 4, 5, 8, 9]], centres.ravel())
    assert box in (1, 2)  # box 0 is sorted; the pusher goes behind an unsorted box
    assert np.linalg.norm(goal[-2:] - x[4 * box: 4 * box + 2]) < 0.1
    done = np.array([*centres[0], 1, 0, *centres[1], 1, 0, *centres[2], 1, 0, 0.0, 0.0])
    goal, box = sort_goal(done, reg)
    assert box == -1 and np.all(goal[-2:] == 0.0)
    np.testing.assert_array_equal(sort_weights(2, 0.5), [1, 1, 0, 0, 1, 1, 0, 0, 0.5, 0.5])


def test_a_box_whose_region_is_taken_waits_and_the_greedy_start_follows_the_pusher_goal():
    reg = regions(2, 0.12)
    centres = (reg[:, :2] + reg[:, 2:]) / 2
    # box 1 sits in box 0's region; box 0 is nearer the pusher, but box 1 must leave first
    x = np.array([0.05, 0.05, 1, 0, *centres[0], 1, 0, 0.0, 0.0])
    goal, box = sort_goal(x, reg)
    assert box == 1
    env = gym.make("controlkit/Sort-v0", n_objects=2, goal_in_obs=False).unwrapped
    planner = make_graph_planner("mip_mpc", tiny_graph(), env, horizon=4, time_limit=None, mip_gap=0.5,
                                 starts=["greedy"])
    inner = planner.inner(x)[1]
    g = inner.problem.check_goal(goal)
    assert inner.target_box(x, g[-1]) == 1
    actions = inner.greedy_actions(x, g)
    assert actions.shape == (4, 2) and np.all(np.abs(actions) <= 0.03 + 1e-12)
    assert "greedy" in inner.candidates(x, g, np.zeros((4, 2)))


def test_bad_input_names_the_field():
    g = tiny_graph()
    push = gym.make("controlkit/Push-v0").unwrapped
    sort3 = gym.make("controlkit/Sort-v0", n_objects=3).unwrapped
    with pytest.raises(ControlkitError, match="env: "):
        check_graph_env(g, push)
    with pytest.raises(ControlkitError, match="env: "):
        GraphSortTask(push)
    t_env = gym.make("controlkit/Sort-v0", n_objects=2, shape="t").unwrapped
    with pytest.raises(ControlkitError, match="model.file: .*env_kwargs.shape='t'"):
        check_graph_env(g, t_env)
    with pytest.raises(ControlkitError, match="planner type: .*lqr"):
        make_graph_planner("lqr", g, sort3)
    with pytest.raises(ControlkitError, match="planners.mppi: .*n_sample"):
        make_graph_planner("mppi", g, sort3, n_sample=10)
    with pytest.raises(ControlkitError, match="model.file: need a graph model"):
        check_graph_env(object(), sort3)
    with pytest.raises(ControlkitError, match="regions: need shape \\(3, 4\\)"):
        sort_goal(np.zeros(14), regions(2, 0.12))
    with pytest.raises(ControlkitError, match="counts: "):
        collect_sort_data((5,), trajectories=1, steps=2)
