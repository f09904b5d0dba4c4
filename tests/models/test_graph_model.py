"""Graph dynamics: torch model, numpy export and the compiled CompactNetwork compute the same function; MILP and
samplers plan on it; the MILP's predicted rollout is the graph model's; files and bad input."""

import numpy as np
import pytest
import torch

from controlkit.core.errors import ControlkitError
from controlkit.models.graph import GraphNetwork, box_edges, objects_in, pad_states, unpad_states
from controlkit.models.graph_training import GraphDynamics, export_graph
from controlkit.models.network import CompactNetwork
from controlkit.planning.mip_mpc import MIPMPC
from controlkit.planning.samplers import MPPIPlanner


def random_state(rng: np.random.Generator, n: int) -> np.ndarray:
    th = rng.uniform(-np.pi, np.pi, n)
    boxes = np.column_stack([rng.uniform(-0.15, 0.15, (n, 2)), np.cos(th), np.sin(th)])
    return np.concatenate([boxes.ravel(), rng.uniform(-0.2, 0.2, 2)])


def model(seed: int = 0, **kw) -> GraphDynamics:
    m = GraphDynamics(seed=seed, **kw)
    with torch.no_grad():
        m.out_scale.copy_(torch.tensor([0.01, 0.01, 0.05, 0.05]))
        m.pusher.weight.copy_(m.u_scale * torch.eye(2))  # the pusher follows its set-point, as the trained map does
        m.pusher.bias.zero_()
    return m.double()


MODES = [np.array([0, 1, 2, 0, 0, 2, 1, 0]), np.array([0, 0, 2, 1, 0, 0, 2, 0])]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7])  # 7: more nodes than Sort-v0 has boxes (rope particles)
@pytest.mark.parametrize("sparse", [False, True])
def test_torch_numpy_and_compact_agree(n, sparse):
    rng = np.random.default_rng(n)
    slots = max(n, 4)
    m = model(message_hidden=[8], update_hidden=[8], message_size=4, radius=0.2, max_objects=slots)
    modes = MODES if sparse else None
    gates = None if modes is None else [torch.nn.functional.one_hot(torch.as_tensor(k), 3).double()[:, :2]
                                        for k in modes]
    g = export_graph(m, modes)
    for _ in range(5):
        x, u = random_state(rng, n), rng.uniform(-0.03, 0.03, 2)
        edges = g.edges(x)
        with torch.no_grad():
            ref = m.step(torch.as_tensor(pad_states(x, n, slots)[None]), torch.as_tensor(u[None]), gates)[0].numpy()
        np.testing.assert_allclose(g.step(x, u), unpad_states(ref, n), atol=1e-12)
        net = g.compact(n, edges)
        np.testing.assert_allclose(net.step(x, u), unpad_states(ref, n), atol=1e-12)
    if sparse:  # removed neurons are dropped; ReLU per edge and per box as the modes say
        assert net.metadata["graph"]["relu_per_edge"] == 4 and net.metadata["graph"]["relu_per_box"] == 5


def test_edges_by_distance_and_fixed_graph():
    x = np.array([0.0, 0.0, 1, 0, 0.1, 0.0, 1, 0, 0.3, 0.0, 1, 0, -0.2, 0.0])
    assert box_edges(x, 0.15) == [(1, 0), (0, 1)]
    m = model(message_hidden=[8], update_hidden=[8], message_size=4, radius=0.15)
    g = export_graph(m)
    # the compiled graph is fixed: rolled out over several steps it equals the torch model with the same edges
    actions = np.random.default_rng(0).uniform(-0.03, 0.03, (6, 2))
    net = g.compact(3, g.edges(x))
    edges = torch.zeros(4, 4, dtype=torch.bool)
    for s, r in g.edges(x):
        edges[r, s] = True
    with torch.no_grad():
        ref = m.rollout(torch.as_tensor(pad_states(x, 3)[None]), torch.as_tensor(actions[None]), edges=edges)[0]
    np.testing.assert_allclose(net.rollout(x, actions)[1:], unpad_states(ref.numpy(), 3), atol=1e-12)


def sparse_graph(seed: int = 1) -> GraphNetwork:
    m = model(seed, message_hidden=[4], update_hidden=[4], message_size=3, radius=0.2)
    return export_graph(m, [np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2])])


def problem_args(n: int, horizon: int):
    nx = 4 * n + 2
    lim = np.array([0.27, 0.27, 5.0, 5.0] * n + [0.285, 0.285])
    w = np.array([1.0, 1.0, 0.0, 0.0] * n + [0.1, 0.1])
    return dict(horizon=horizon, u_low=[-0.03, -0.03], u_high=[0.03, 0.03], x_low=-lim, x_high=lim,
                state_weights=w), nx


def test_milp_rollout_equals_graph_model_and_beats_mppi():
    g = sparse_graph()
    n, H = 2, 3
    kw, nx = problem_args(n, H)
    x0 = np.array([0.0, 0.0, 1, 0, 0.08, 0.02, 0, 1, -0.06, 0.0])
    goal = x0.copy()
    goal[:2] = [0.03, 0.0]
    goal[4:6] = [0.1, 0.05]
    goal[-2:] = [-0.03, 0.0]
    net = g.compact(n, g.edges(x0))
    mip = MIPMPC(net, mip_gap=0.0, tighten_steps=0, **kw)
    plan = mip.plan(x0, goal)
    assert plan.status.value in ("ok", "suboptimal") and plan.extras["binaries"] > 0
    # the MILP's predicted states are the graph model's rollout of the MILP's actions (numpy step, own edges)
    x, states = x0, [x0]
    for a in plan.actions:
        x = g.step(x, a, edges=g.edges(x0))
        states.append(x)
    np.testing.assert_allclose(plan.states, np.array(states), atol=1e-6)
    np.testing.assert_allclose(plan.objective, mip.problem.objective(plan.states, plan.actions,
                                                                     mip.problem.check_goal(goal)), atol=1e-6)
    # solved to optimality, the MILP is no worse than MPPI on the same compiled model, problem and goal
    mppi = MPPIPlanner(net, n_samples=300, iterations=5, temperature=0.003, seed=0, **kw)
    ref = mppi.plan(x0, goal)
    assert plan.objective <= ref.objective + 1e-7


def test_files_round_trip_and_reject_an_mlp_file(tmp_path):
    g = sparse_graph()
    path = g.save(tmp_path / "graph.npz")
    back = GraphNetwork.load(path)
    x = random_state(np.random.default_rng(0), 3)
    np.testing.assert_array_equal(back.compact(3, back.edges(x)).step(x, [0.01, 0.0]),
                                  g.compact(3, g.edges(x)).step(x, [0.01, 0.0]))
    mlp = CompactNetwork([np.ones((3, 8)), np.ones((6, 3))], [np.zeros(3), np.zeros(6)], [np.ones(3, bool)], 6, 2)
    mlp.save(tmp_path / "mlp.npz")
    with pytest.raises(ControlkitError, match="model.file: .* is not a graph model"):
        GraphNetwork.load(tmp_path / "mlp.npz")
    with pytest.raises(ControlkitError, match="model.file: no such file"):
        GraphNetwork.load(tmp_path / "missing.npz")


def test_bad_input_names_the_field():
    g = sparse_graph()
    with pytest.raises(ControlkitError, match="n_objects: must be an integer >= 1"):
        g.compact(0)
    with pytest.raises(ControlkitError, match="edges: "):
        g.compact(2, [(0, 0)])
    with pytest.raises(ControlkitError, match="edges: "):
        g.compact(2, [(0, 2)])
    with pytest.raises(ControlkitError, match="x0: length 9 is not 4 n \\+ 2"):
        g.edges(np.zeros(9))
    with pytest.raises(ControlkitError, match="state: length 7"):
        objects_in(np.zeros(7))
    with pytest.raises(ControlkitError, match="states: last dimension"):
        pad_states(np.zeros(10), 3)
