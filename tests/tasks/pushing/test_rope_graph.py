"""Rope-v0 particles on the graph dynamics: the node layout, the data behaviour, training on real rope data."""

import numpy as np
import pytest
import torch

from controlkit.core.errors import ControlkitError
from controlkit.models.dynamics import TrainSettings, fit
from controlkit.models.graph_training import GraphDynamics
from controlkit.tasks.pushing.rope_data import as_graph_states, collect_rope_data, rope_graph_model

N = 6


@pytest.fixture(scope="module")
def rope_data():
    return collect_rope_data(10, 10, seed=0, env_kwargs={"n_particles": N})


def test_particles_become_nodes_with_a_fixed_heading():
    rope = np.arange(2 * N + 2, dtype=float)
    g = as_graph_states(rope, N)
    assert g.shape == (4 * N + 2,)
    nodes = g[: 4 * N].reshape(N, 4)
    np.testing.assert_array_equal(nodes[:, :2], rope[: 2 * N].reshape(N, 2))
    np.testing.assert_array_equal(nodes[:, 2:], np.tile([1.0, 0.0], (N, 1)))
    np.testing.assert_array_equal(g[-2:], rope[-2:])
    assert as_graph_states(np.zeros((3, 5, 2 * N + 2)), N).shape == (3, 5, 4 * N + 2)


def test_explorer_data_is_seeded_and_moves_the_rope(rope_data):
    again = collect_rope_data(3, 10, seed=0, env_kwargs={"n_particles": N})  # same seeds for the first three
    np.testing.assert_array_equal(rope_data.states[:3], again.states)
    other = collect_rope_data(1, 10, seed=1, env_kwargs={"n_particles": N})
    assert not np.allclose(rope_data.states[0, 0], other.states[0, 0])
    assert rope_data.nx == 4 * N + 2 and rope_data.metadata["n_particles"] == N
    xy = rope_data.states[:, :, : 4 * N].reshape(10, 11, N, 4)[..., :2]
    moved = np.linalg.norm(np.diff(xy, axis=1), axis=-1).max(-1)
    assert (moved > 1e-3).mean() > 0.3  # the pusher keeps driving through the rope


def test_graph_model_trains_on_rope_particles(rope_data):
    model = rope_graph_model(rope_data, N, hidden=16, message_size=8, seed=0)
    assert model.nx == 4 * N + 2 and model.max_objects == N
    x, u, xn = (torch.as_tensor(a, dtype=torch.float32) for a in rope_data.transitions())
    settings = TrainSettings(epochs=25, batch_size=32, lr=1e-2, rollout_weight=0.0, eval_steps=3)
    fit(model, rope_data, rope_data, settings, seed=1)
    with torch.no_grad():
        pred = model.step(x, u)
    nodes = lambda s: s[:, : 4 * N].reshape(-1, N, 4)  # noqa: E731
    error = (nodes(pred)[..., :2] - nodes(xn)[..., :2]).norm(dim=-1).mean()
    stays = (nodes(x)[..., :2] - nodes(xn)[..., :2]).norm(dim=-1).mean()  # "the rope does not move"
    assert error < 0.8 * stays  # it learned how the pushed particles move (about 0.64x in development)
    # the pusher follows its set-point, the particles' heading features stay put (their output scale is pinned)
    torch.testing.assert_close(pred[:, -2:], xn[:, -2:], atol=2e-3, rtol=0)
    assert torch.allclose(nodes(pred)[..., 2:], torch.tensor([1.0, 0.0]).expand(len(x), N, 2), atol=1e-4)


def test_max_objects_is_validated_and_defaults_to_the_sort_layout():
    assert GraphDynamics().nx == 4 * 4 + 2
    for bad in (0, True, 2.5):
        with pytest.raises(ControlkitError, match="max_objects"):
            GraphDynamics(max_objects=bad)


def test_explorer_wanders_off_the_rope_only_when_asked():
    from controlkit.tasks.pushing.rope_data import REACH, RopeExplorer

    rope = np.concatenate([np.column_stack([np.arange(N) * 0.025, np.zeros(N)]).ravel(), [0.0, -0.05]])
    particles = rope[: 2 * N].reshape(N, 2)

    def gaps(wander):
        out = []
        for seed in range(20):
            ex = RopeExplorer(N, wander=wander, seed=seed)
            ex.act(rope)
            out.append(np.linalg.norm(particles - ex._target, axis=1).min())
        return np.array(out), ex

    near, _ = gaps(0.0)
    assert near.max() <= 0.05 + 1e-9  # every target just past a particle (the overshoot)
    far, ex = gaps(1.0)
    assert np.all(np.abs(ex._target) <= REACH) and np.median(far) > 0.1  # random table points, mostly far off


def test_explorer_retreats_straight_away_from_the_rope_when_asked():
    from controlkit.tasks.pushing.rope_data import RopeExplorer

    rope = np.concatenate([np.column_stack([np.arange(N) * 0.025, np.zeros(N)]).ravel(), [0.05, -0.03]])
    for seed in range(10):
        ex = RopeExplorer(N, retreat=1.0, seed=seed)
        ex.act(rope)
        way = ex._target - rope[-2:]
        # from the pusher, 5-15 cm straight down: away from the nearest particle (0.05, 0), never towards the rope
        assert 0.05 - 1e-9 <= np.linalg.norm(way) <= 0.15 + 1e-9 and abs(way[0]) < 1e-9 and way[1] < 0
