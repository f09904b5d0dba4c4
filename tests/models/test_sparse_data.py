"""Transition collection, the dataset file and the trajectory split, on gymnasium's real Pendulum-v1."""

import numpy as np
import pytest

from controlkit.core.errors import ControlkitError
from controlkit.models.data import (
    CorrelatedNoiseController,
    TransitionData,
    collect,
    load_dataset,
    make_env,
    save_dataset,
)


@pytest.mark.parametrize("behaviour", ["random", "correlated"])
def test_same_seed_same_data_other_seed_other_data(behaviour):
    a = collect("Pendulum-v1", 4, 15, seed=7, behaviour=behaviour)
    b = collect("Pendulum-v1", 4, 15, seed=7, behaviour=behaviour)
    c = collect("Pendulum-v1", 4, 15, seed=8, behaviour=behaviour)
    assert np.array_equal(a.states, b.states) and np.array_equal(a.actions, b.actions)
    assert not np.allclose(a.actions, c.actions)
    assert a.states.shape == (4, 16, 3) and a.actions.shape == (4, 15, 1) and a.n_transitions == 60
    assert np.all(np.abs(a.actions) <= 2.0)
    # Observations are (cos, sin, thetadot): consecutive states chain through the env.
    assert np.allclose(a.states[..., 0] ** 2 + a.states[..., 1] ** 2, 1.0, atol=1e-5)


def test_correlated_noise_is_smoother_than_uniform():
    env = make_env("Pendulum-v1")
    ctrl = CorrelatedNoiseController(env.action_space, correlation=0.9)
    ctrl.reset(seed=0)
    acts = np.array([ctrl.act(None)[0] for _ in range(2000)])
    lag1 = np.corrcoef(acts[:-1], acts[1:])[0, 1]
    uniform = collect("Pendulum-v1", 1, 2000, seed=0, behaviour="random").actions[0, :, 0]
    assert lag1 > 0.7 and abs(np.corrcoef(uniform[:-1], uniform[1:])[0, 1]) < 0.1
    assert acts.min() >= -2.0 and acts.max() <= 2.0 and acts.std() > 0.5


def test_windows_and_split_by_trajectory():
    data = collect("Pendulum-v1", 10, 12, seed=1)
    x0, actions, targets = data.windows(5)
    assert x0.shape == (10 * 8, 3) and actions.shape == (80, 5, 1) and targets.shape == (80, 5, 3)
    assert np.array_equal(targets[0, 0], data.states[0, 1]) and np.array_equal(x0[1], data.states[0, 1])
    train, val = data.split(0.3, seed=0)
    assert (train.n_trajectories, val.n_trajectories) == (7, 3)
    rows = {tuple(s.ravel()) for s in data.states}
    train_rows = {tuple(s.ravel()) for s in train.states}
    val_rows = {tuple(s.ravel()) for s in val.states}
    assert train_rows | val_rows == rows and not train_rows & val_rows
    with pytest.raises(ControlkitError, match="data.val_fraction"):
        data.split(0.01, seed=0)


def test_early_termination_is_recorded_in_lengths():
    states = np.zeros((2, 4, 1))
    states[0, :3, 0] = [0, 1, 2]
    data = TransitionData(states, np.ones((2, 3, 1)), np.array([2, 3]))
    x, u, xn = data.transitions()
    assert len(x) == 5 and np.array_equal(xn[:2, 0], [1, 2])
    assert len(data.windows(3)[0]) == 1  # only the full-length trajectory has a 3-step window


def test_dataset_file_round_trip(tmp_path):
    data = collect("Pendulum-v1", 3, 10, seed=2, behaviour="random")
    path = save_dataset(data, tmp_path / "d.npz")
    back = load_dataset(path, nx=3, nu=1)
    assert np.array_equal(back.states, data.states) and np.array_equal(back.lengths, data.lengths)
    assert back.metadata["env"] == "Pendulum-v1" and back.metadata["behaviour"] == "random"
    assert not list(tmp_path.glob(".*tmp"))  # atomic write leaves no temporary behind


def test_dataset_file_errors_name_the_field(tmp_path):
    with pytest.raises(ControlkitError, match="data.file: no such dataset file"):
        load_dataset(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ControlkitError, match="data.file: .* not a readable controlkit dataset"):
        load_dataset(tmp_path / "junk.npz")
    data = collect("Pendulum-v1", 2, 5, seed=0)
    save_dataset(data, tmp_path / "d.npz")
    with pytest.raises(ControlkitError, match=r"data.file: .* nx \(state size\) 3, the env needs 4"):
        load_dataset(tmp_path / "d.npz", nx=4, nu=1)
    np.savez_compressed(tmp_path / "bad.npz", states=np.zeros((2, 5, 3)), actions=np.zeros((2, 5, 1)),
                        lengths=np.array([5, 5]), metadata=np.array("{}"), format_version=np.array(1))
    with pytest.raises(ControlkitError, match=r"data.file \(bad.npz\): states shape"):
        load_dataset(tmp_path / "bad.npz")


def test_envs_that_cannot_be_learned_are_refused():
    with pytest.raises(ControlkitError, match="env: unknown"):
        make_env("NoSuchEnv-v9")
    with pytest.raises(ControlkitError, match="env: 'CartPole-v1' cannot be used: its action space is Discrete"):
        make_env("CartPole-v1")
