"""Graph dynamics: torch model, numpy export and the compiled CompactNetwork compute the same function; MILP and
samplers plan on it; the MILP's predicted rollout is the graph model's; files and bad input."""

import dataclasses

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
GATES = [torch.nn.functional.one_hot(torch.as_tensor(k), 3).double()[:, :2] for k in MODES]


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


# --- pusher edges only within pusher_radius -------------------------------------------------------------------------
def radius_model(seed: int = 3, pusher_radius: float | None = 0.12, max_objects: int = 4) -> GraphDynamics:
    return model(seed, message_hidden=[8], update_hidden=[8], message_size=4, radius=0.1, max_objects=max_objects,
                 pusher_radius=pusher_radius)


def test_a_pusher_outside_its_radius_leaves_the_objects_exactly_still():
    m = radius_model()
    g = export_graph(m, MODES)
    x = np.array([0.0, 0.0, 1, 0, 0.05, 0.0, 0, 1, 0.25, 0.2, 1, 0, -0.2, 0.0])  # boxes 0-1 touch, box 2 apart
    assert g.pusher_edges(x) == [] and g.edges(x) == [(1, 0), (0, 1)]
    actions = np.full((4, 2), -0.03)  # moving away, never within 0.12 m
    net = g.compact_at(x)
    states = net.rollout(x, actions)
    np.testing.assert_array_equal(states[:, :12], np.tile(x[:12], (5, 1)))  # every box, bit for bit
    np.testing.assert_allclose(states[-1, 12:], x[12:] + actions.sum(0), atol=1e-12)
    assert net.metadata["graph"]["moving"] == [] and net.n_relu == 0  # no ReLU left
    np.testing.assert_array_equal(g.step(x, actions[0])[:12], x[:12])
    with torch.no_grad():
        ref = m.step(torch.as_tensor(pad_states(x, 3)[None]), torch.as_tensor(actions[:1]), GATES)[0].numpy()
    np.testing.assert_array_equal(ref[:12], x[:12])
    # the pusher next to box 0 reaches box 1 through their edge, but not box 2
    x[-2:] = [-0.08, 0.0]
    assert g.pusher_edges(x) == [0]
    moved = g.step(x, np.array([0.03, 0.0]))
    assert np.all(moved[:8] != x[:8]) and np.array_equal(moved[8:12], x[8:12])
    assert g.compact_at(x).metadata["graph"]["moving"] == [0, 1]


@pytest.mark.parametrize("n", [2, 3, 6])
def test_compact_equals_step_with_radius_edges(n):
    rng = np.random.default_rng(10 + n)
    m = radius_model(max_objects=max(n, 4))
    g = export_graph(m, MODES)
    kinds = set()
    for _ in range(12):
        x, u = random_state(rng, n), rng.uniform(-0.03, 0.03, 2)
        edges, pusher = g.interactions(x)
        kinds.add((len(pusher) > 0, len(pusher) < n))
        with torch.no_grad():
            ref = m.step(torch.as_tensor(pad_states(x, n, max(n, 4))[None]), torch.as_tensor(u[None]),
                         GATES)[0].numpy()
        np.testing.assert_allclose(g.step(x, u), unpad_states(ref, n), atol=1e-12)
        np.testing.assert_allclose(g.compact_at(x).step(x, u), unpad_states(ref, n), atol=1e-12)
        # fixed over a horizon: the compiled graph rolls out as step does with the first state's graph
        actions = rng.uniform(-0.03, 0.03, (4, 2))
        xs = [x]
        for a in actions:
            xs.append(g.step(xs[-1], a, edges=edges, pusher_edges=pusher))
        np.testing.assert_allclose(g.compact(n, edges, pusher).rollout(x, actions), np.array(xs), atol=1e-12)
    assert (True, True) in kinds  # some states had the pusher near some nodes and far from others


def test_milp_plans_on_radius_edges_and_its_rollout_is_the_models():
    m = radius_model(seed=4)
    g = export_graph(m, [np.array([0, 0, 1, 2, 0, 2, 1, 0]), np.array([0, 1, 1, 2, 0, 0, 2, 2])])
    n, H = 3, 3
    kw, _ = problem_args(n, H)
    x0 = np.array([0.0, 0.0, 1, 0, 0.06, 0.0, 0, 1, 0.2, 0.2, 1, 0, -0.06, 0.0])
    goal = x0.copy()
    goal[:2], goal[8:10], goal[-2:] = [0.03, 0.0], [0.0, 0.0], [-0.03, 0.0]
    edges, pusher = g.interactions(x0)
    assert pusher == (0,)
    net = g.compact_at(x0)
    plan = MIPMPC(net, mip_gap=0.0, tighten_steps=0, **kw).plan(x0, goal)
    assert plan.status.value in ("ok", "suboptimal")
    xs = [x0]
    for a in plan.actions:
        xs.append(g.step(xs[-1], a, edges=edges, pusher_edges=pusher))
    np.testing.assert_allclose(plan.states, np.array(xs), atol=1e-6)
    np.testing.assert_array_equal(plan.states[:, 8:12], np.tile(x0[8:12], (H + 1, 1)))  # out of reach: still


def test_version_1_files_keep_the_pusher_edge_to_every_node(tmp_path):
    import json

    g = sparse_graph()
    assert g.pusher_radius is None
    path = g.save(tmp_path / "v2.npz")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(str(arrays["header"]))
    assert header["format_version"] == 2 and header["pusher_radius"] is None
    del header["pusher_radius"]
    header["format_version"] = 1
    np.savez(tmp_path / "v1.npz", **{**arrays, "header": np.array(json.dumps(header))})
    old = GraphNetwork.load(tmp_path / "v1.npz")
    x = random_state(np.random.default_rng(5), 3)
    x[-2:] = [0.29, 0.29]  # far from every box: a version-1 model still has its pusher edges
    assert old.pusher_radius is None and old.pusher_edges(x) == [0, 1, 2]
    np.testing.assert_array_equal(old.compact_at(x).step(x, [0.01, 0.0]), g.compact(3, g.edges(x)).step(x, [0.01, 0.0]))
    header["format_version"] = 3
    np.savez(tmp_path / "v3.npz", **{**arrays, "header": np.array(json.dumps(header))})
    with pytest.raises(ControlkitError, match="model.file: .* has format version 3; this controlkit reads 1, 2"):
        GraphNetwork.load(tmp_path / "v3.npz")
    # a model with a radius keeps it through its file
    r = export_graph(radius_model())
    assert GraphNetwork.load(r.save(tmp_path / "r.npz")).pusher_radius == pytest.approx(0.12)


@pytest.mark.parametrize("bad", [0.0, -0.1, float("inf"), "far", True])
def test_bad_pusher_radius_names_the_field(bad):
    with pytest.raises(ControlkitError, match="pusher_radius: must be a positive number"):
        GraphDynamics(pusher_radius=bad)
    with pytest.raises(ControlkitError, match="pusher_radius: must be a positive number"):
        dataclasses.replace(sparse_graph(), pusher_radius=bad)
    with pytest.raises(ControlkitError, match="pusher_edges: "):
        sparse_graph().compact(2, [], [2])


def test_fixed_graph_training_rollouts_are_the_planners_rollouts():
    rng = np.random.default_rng(7)
    m = radius_model()
    m.fixed_graph = True
    g = export_graph(m, MODES)
    xs = np.array([random_state(rng, 3) for _ in range(6)])
    actions = rng.uniform(-0.03, 0.03, (6, 5, 2))
    with torch.no_grad():
        ref = m.rollout(torch.as_tensor(pad_states(xs, 3)), torch.as_tensor(actions), GATES).numpy()
    for x, a, r in zip(xs, actions, ref):
        np.testing.assert_allclose(g.compact_at(x).rollout(x, a)[1:], unpad_states(r, 3), atol=1e-12)
