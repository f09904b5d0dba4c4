"""On-policy data aggregation (``data.aggregate``): the recorder, the data it makes, the errors, a tiny run."""

import json

import gymnasium as gym
import numpy as np
import pytest

import controlkit  # noqa: F401
from controlkit.core.controller import Controller, StepInfo
from controlkit.core.errors import ControlkitError
from controlkit.models.data import TransitionData, concatenate, load_dataset
from controlkit.models.network import CompactNetwork
from controlkit.runner.registry import validate_config
from controlkit.runner.run import run_experiment
from controlkit.tasks.pushing import (
    ActionRecorder,
    CostConfig,
    SimDynamics,
    Task,
    closed_loop_data,
    rollout_position_errors,
)
from controlkit.tasks.pushing.greedy import GreedyPusher

TINY = {
    "kind": "model_based_control", "name": "tiny_aggregate", "seed": 0,
    "env_kwargs": {"obstacle": [-0.04, -0.04, 0.04, 0.04], "obstacle_crossing": True,
                   "goal_distance": [0.24, 0.3]},
    "data": {"trajectories": 12, "steps": 8, "behaviour": "push",
             "aggregate": {"rounds": 1, "episodes": 2, "planners": ["starts_only"], "noise": 0.3}},
    "model": {"hidden": [12, 12]},
    "train": {"epochs": 2, "eval_steps": 3, "rollout_steps": 2},
    "sparsify": {"schedule": [6], "search_epochs": 1, "finetune_epochs": 1},
    "cost": {"horizon": 3, "keep_out_margin": 0.05, "keep_out_penalty": 1000.0, "keep_out_route": 0.02},
    "planners": {"starts_only": {"type": "starts_only", "starts": ["safe", "greedy"], "warm_samples": 16,
                                 "warm_iterations": 1},
                 "greedy": {"type": "greedy"}},
    "episodes": 1, "max_steps": 12, "frames": False,
}


class _Constant(Controller):
    def __init__(self, action):
        self.action = np.asarray(action, dtype=np.float32)

    def set_goal(self, goal):
        pass

    def _act(self, obs):
        return self.action.copy(), StepInfo()


def test_recorder_passes_the_action_through_without_noise_and_clips_with_it():
    rec = ActionRecorder(_Constant([0.03, -0.01]), step_size=0.03)
    rec.reset(seed=1)
    assert np.array_equal(rec.act(np.zeros(6)), np.float32([0.03, -0.01]))
    noisy = ActionRecorder(_Constant([0.03, -0.01]), step_size=0.03, noise=1.0)
    noisy.reset(seed=1)
    a = np.array([noisy.act(np.zeros(6)) for _ in range(50)])
    assert np.all(np.abs(a) <= 0.03 + 1e-7) and a[:, 1].std() > 0.005  # clipped to the box, and noisy
    assert np.allclose(np.array(noisy.actions), a)  # the record is what was applied
    again = ActionRecorder(_Constant([0.03, -0.01]), step_size=0.03, noise=1.0)
    again.reset(seed=1)
    assert np.array_equal(np.array([again.act(np.zeros(6)) for _ in range(50)]), a)  # same seed, same noise


def test_concatenate_pads_trajectories_of_different_lengths():
    a = TransitionData(np.ones((2, 4, 3)), np.ones((2, 3, 1)), [3, 2])
    b = TransitionData(np.zeros((1, 6, 3)), np.zeros((1, 5, 1)), [5])
    both = concatenate([a, b])
    assert both.states.shape == (3, 6, 3) and both.n_transitions == 10
    assert both.windows(3)[0].shape[0] == 1 + 0 + 3  # windows never cross into padding
    with pytest.raises(ControlkitError, match="sizes"):
        concatenate([a, TransitionData(np.ones((1, 2, 4)), np.ones((1, 1, 1)), [1])])


def test_closed_loop_data_replays_in_the_simulator_and_a_perfect_model_has_no_error():
    env = gym.make("controlkit/Push-v0", goal_in_obs=False, max_episode_steps=6)
    base = env.unwrapped
    task = Task(base, CostConfig(horizon=3))
    data, episodes, names = closed_loop_data(env, task, [("greedy", GreedyPusher(base.shape, base.step_size))],
                                             seeds=[3, 4], noise=0.3)
    assert names == ["greedy", "greedy"] and data.n_transitions == sum(len(e.step_times) for e in episodes)
    sim = SimDynamics(base.shape, base.friction)
    x, u, x_next = data.transitions()
    replay = np.array([sim.rollout(xi, ui[None])[1] for xi, ui in zip(x, u)])
    np.testing.assert_allclose(replay[:, :2], x_next[:, :2], atol=2e-3)  # the recorded actions are the applied ones

    class _Sim:  # the simulator as a "model": its 3-step error along the recorded loop is ~0
        def step(self, xs, us):
            return np.array([sim.rollout(a, b[None])[1] for a, b in zip(xs, us)])

    assert rollout_position_errors(_Sim(), data, steps=3).max() < 5e-3
    still = CompactNetwork([np.zeros((2, 8)), np.zeros((6, 2))], [np.zeros(2), np.zeros(6)], [np.ones(2, bool)], 6, 2,
                           residual=True)  # predicts that nothing moves: its error is how far the object went
    x0, _, targets = data.windows(3)
    np.testing.assert_allclose(rollout_position_errors(still, data, steps=3),
                               np.linalg.norm(targets[:, -1, :2] - x0[:, :2], axis=1))


def test_tiny_aggregation_run_is_seeded_and_reports_every_round(tmp_path):
    config = validate_config(TINY)
    first = run_experiment(config, out=tmp_path / "a", quiet=True)
    s = json.loads((first.run_dir / "summary.json").read_text())
    agg = s["model"]["aggregate"]
    assert [r["round"] for r in agg["rounds"]] == [0, 1]
    r1 = agg["rounds"][1]
    assert r1["transitions_added"] > 0 and r1["transitions"] == agg["rounds"][0]["transitions"] + r1[
        "transitions_added"]
    assert r1["held_out_rollout_error_10_windows"] >= 0 and r1["collection_planners"] == ["starts_only"] * 2
    assert s["model"]["transitions"] == r1["transitions"] and s["model"]["n_relu"] <= 6
    assert load_dataset(agg["data_file"]).n_transitions == r1["transitions_added"]
    for name in ("starts_only", "greedy"):
        c = s["controllers"][name]
        assert "rollout_error_10_median" in c and "initial_rollout_error_10_median" in c
    final = CompactNetwork.load(first.run_dir / "model.npz")
    assert np.array_equal(final.weights[0], CompactNetwork.load(first.run_dir / "model_round1_model.npz").weights[0])
    assert not np.array_equal(final.weights[0], CompactNetwork.load(first.run_dir / "model_round0.npz").weights[0])
    second = run_experiment(config, out=tmp_path / "b", quiet=True)
    again = CompactNetwork.load(second.run_dir / "model.npz")
    for w, v in zip(final.weights, again.weights):
        np.testing.assert_array_equal(w, v)  # same seed, same data, same model


@pytest.mark.parametrize("patch, field", [
    ({"planners": ["greedy"]}, "data.aggregate.planners"),
    ({"planners": ["nope"]}, "data.aggregate.planners"),
    ({"noise": -1}, "data.aggregate.noise"),
    ({"rounds": 0}, "data.aggregate.rounds"),
    ({"bogus": 1}, "data.aggregate.bogus"),
])
def test_bad_aggregate_config_names_the_field(patch, field):
    cfg = json.loads(json.dumps(TINY))
    cfg["data"]["aggregate"].update(patch)
    with pytest.raises(ControlkitError, match=field.replace(".", r"\.")):
        validate_config(cfg)


def test_aggregation_needs_a_model_learned_in_the_run(tmp_path):
    cfg = json.loads(json.dumps(TINY))
    cfg["model"]["file"] = "benchmarks/results/push_mip_step_model.npz"
    with pytest.raises(ControlkitError, match="data.aggregate.*model.file"):
        validate_config(cfg)
