"""The source paper's objectives J1 (steady-state distance) and J2 (yield ratio) and their registered twins."""

import numpy as np
import pytest
import torch
from controlkit.envs.twin_envs import TwinEnv
from controlkit.twins import SteadyStateObjective, YieldRatioObjective, make_task
from controlkit.twins.baselines import ConstantTwinController
from controlkit.twins.deploy import run_episode
from controlkit.twins.neural_control import surrogate_cost

from controlkit.core.errors import ControlkitError


def _obs(rows):
    obs = np.zeros((len(rows), 7))
    obs[:, [0, 3, 4]] = rows
    return obs


def test_j2_is_substrate_over_products_summed_over_the_episode_in_numpy_and_torch():
    j2 = YieldRatioObjective()
    obs = _obs([[100, 0, 0], [80, 5, 5], [60, 10, 20], [40, 20, 30]])
    rate = np.array([[1.0], [0.0], [2.0]])
    expected = (80 + 60 + 40) / (5 + 5 + 10 + 20 + 20 + 30 + 1)
    assert j2.episode_cost(obs[:-1], obs[1:], rate) == pytest.approx(expected)
    t = torch.as_tensor(obs[None], dtype=torch.float64)
    assert float(j2.episode_cost(t[:, :-1], t[:, 1:], torch.as_tensor(rate[None]))[0]) == pytest.approx(expected)
    # a ratio of sums, not a mean of per-tick ratios
    assert expected != pytest.approx(np.mean(obs[1:, 0] / (obs[1:, 3] + obs[1:, 4] + 1)))
    with_inflow = YieldRatioObjective({"inflow": 0.5})
    assert with_inflow.episode_cost(obs[:-1], obs[1:], rate) == pytest.approx(expected + 0.5 * 1.0)
    with pytest.raises(ControlkitError, match="objective.weights.yield"):
        YieldRatioObjective({"yield": 1.0})


def test_j1_averages_the_squared_relative_distance_over_the_last_window():
    j1 = SteadyStateObjective(target=(100.0, 10.0), window=0.5)
    obs = np.array([[0.0, 0.0], [200.0, 0.0], [50.0, 5.0], [100.0, 20.0], [110.0, 10.0]])
    rate = np.zeros((4, 2))
    # the last half of 4 ticks: (100, 20) -> 0 + 1, (110, 10) -> 0.01 + 0
    assert j1.episode_cost(obs[:-1], obs[1:], rate) == pytest.approx((1.0 + 0.01) / 2)
    assert SteadyStateObjective(target=(100.0, 10.0), window=1.0).episode_cost(obs[:-1], obs[1:], rate) == \
        pytest.approx((2.0 + 0.5 + 1.0 + 0.01) / 4)  # (200, 0), (50, 5), (100, 20), (110, 10)
    with pytest.raises(ControlkitError, match="objective.window"):
        SteadyStateObjective(window=0.0)
    with pytest.raises(ControlkitError, match="mip_mpc"):
        j1.l1_form(3)


@pytest.mark.parametrize("twin, params, u", [
    ("metabolic_paper", {"scale": 0.01}, [1.5]),
    ("predator_prey_paper", {"width": 30, "height": 30, "initial_sheep": 35, "initial_wolves": 17}, [0.01, 0.02]),
])
def test_gym_return_is_minus_the_episode_objective(twin, params, u):
    timing = {"burn_in": 5, "interval": 10, "decisions": 4}
    task = make_task(twin, params, **timing)
    episode = run_episode(task, ConstantTwinController(np.array(u)), seed=11)
    env = TwinEnv(twin, params, **timing)
    env.reset(seed=11)
    rewards = [env.step(env.action_of(np.array(u)))[1] for _ in range(4)]
    assert sum(rewards) == pytest.approx(-episode.cost, rel=1e-9)
    assert episode.cost > 0


def test_paper_twins_are_registered_with_their_objectives_and_the_surrogate_loss_uses_j2():
    task = make_task("metabolic_paper")
    assert isinstance(task.objective, YieldRatioObjective) and task.objective.scale == pytest.approx(22**2 / 100**2)
    assert task.ticks == 10_000 and task.bounds[1].tolist() == [3.0]
    assert isinstance(make_task("predator_prey_paper").objective, SteadyStateObjective)
    x0 = torch.tensor([[100.0, 0, 0, 1, 1, 0, 0]])
    states = torch.tensor([[[90.0, 0, 0, 5, 5, 0, 0], [80.0, 0, 0, 10, 10, 0, 0]]])
    cost = surrogate_cost(task, x0, states, torch.ones(1, 2, 1))
    assert float(cost[0]) == pytest.approx(170.0 / 31.0)
