"""Uncertainty that changes decisions: CVaR and risk summaries, the risk-averse loss, surrogate ensembles fitted on
bootstrap resamples, training over parameter draws, and the twin_control summary's risk fields."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from controlkit.twins import TwinTask, make_objective, make_task
from controlkit.twins.neural_control import ControllerSettings, rollout_policy, surrogate_cost, train_controller
from controlkit.twins.surrogate import SurrogateSettings, collect_data
from controlkit.twins.uncertainty import EnsembleSurrogate, cvar, fit_ensemble, risk_loss, risk_summary
from pydantic import ValidationError
from torch import nn

from controlkit.core.errors import ControlkitError
from controlkit.runner.registry import validate_config
from controlkit.runner.run import run_experiment

torch.set_num_threads(1)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TINY = {"width": 30, "height": 30, "initial_sheep": 80, "initial_wolves": 20, "removal": "count",
        "max_removal_count": 10}


def tiny_task() -> TwinTask:
    return TwinTask("predator_prey", TINY, make_objective("predator_prey", target=(80.0, 10.0)), burn_in=60,
                    interval=5, decisions=8, apply="pulse")


def test_cvar_is_the_mean_of_the_worst_fraction_in_numpy_and_torch():
    costs = np.arange(1.0, 11.0)
    assert cvar(costs, 0.1) == 10.0 and cvar(costs, 0.25) == 9.0 and cvar(costs, 1.0) == 5.5
    assert cvar(costs, 0.01) == 10.0  # at least one replicate
    t = torch.tensor(costs, requires_grad=True)
    value = cvar(t, 0.25)
    value.backward()
    assert value.item() == 9.0
    np.testing.assert_allclose(t.grad.numpy(), [0] * 7 + [1 / 3] * 3)  # only the worst rollouts are trained on
    assert risk_loss(t, "mean").item() == 5.5 and risk_loss(t, "cvar", 0.25, 0.5).item() == (5.5 + 9.0) / 2
    with pytest.raises(ControlkitError, match="cvar_alpha: the worst fraction"):
        cvar(costs, 0.0)
    with pytest.raises(ControlkitError, match="controller.risk: unknown value 'worst'"):
        risk_loss(t, "worst")
    with pytest.raises(ValidationError, match="cvar_alpha"):
        ControllerSettings(cvar_alpha=1.5)


def test_risk_summary_reports_quantiles_and_failure_probability():
    costs = np.linspace(0.0, 1.0, 21)
    outcomes = [{"failed": float(c > 0.8), "peak": c} for c in costs]
    r = risk_summary(costs, outcomes, alpha=0.1)
    assert r["cvar"] == pytest.approx(np.mean(costs[-3:])) and r["var"] == pytest.approx(0.9)
    assert list(r["quantiles"]) == ["p5", "p25", "p50", "p75", "p95"] and r["quantiles"]["p50"] == 0.5
    assert r["failure_outcome"] == "failed" and r["failure_probability"] == pytest.approx(4 / 21)
    low, high = r["failure_ci95"]
    assert 0 < low < 4 / 21 < high < 1
    assert "failure_probability" not in risk_summary(costs, [{"peak": 1.0}] * 21)


class _Shift(nn.Module):
    def __init__(self, c: float) -> None:
        super().__init__()
        self.c = c

    def step(self, x, u):
        return x + self.c


def test_ensemble_steps_each_block_of_rows_with_one_member():
    ens = EnsembleSurrogate([_Shift(1.0), _Shift(2.0), _Shift(3.0)])
    out = ens.step(torch.zeros(6, 2), torch.zeros(6, 1))
    assert out[:, 0].tolist() == [1, 1, 2, 2, 3, 3]
    assert ens.rollout(torch.zeros(3, 1), torch.zeros(3, 4, 1))[:, -1, 0].tolist() == [4, 8, 12]
    with pytest.raises(ControlkitError, match="surrogate.members"):
        EnsembleSurrogate([])


@pytest.fixture(scope="module")
def ensemble():
    task = tiny_task()
    # training over parameter draws: each trajectory's twin has its own wolf reproduction rate
    draws = [{"wolf_reproduce": r} for r in (0.03, 0.05, 0.07)]
    data = collect_data(task, range(500, 518), params=draws)
    train, val = data.split(0.25, 0)
    settings = SurrogateSettings(hidden=[16], train={"epochs": 15, "batch_size": 32, "rollout_steps": 4,
                                                     "patience": 15, "eval_steps": 6})
    return task, train, val, settings, fit_ensemble("discrete", train, val, settings, members=3, seed=0)


def test_parameter_draws_reach_the_twins():
    task = tiny_task()
    a = collect_data(task, [7], params=[{"wolf_reproduce": 0.0}], decisions=8)
    b = collect_data(task, [7], decisions=8)
    assert not np.array_equal(a.states, b.states)  # same seed, other parameters
    np.testing.assert_array_equal(b.states, collect_data(task, [7], params=[{}], decisions=8).states)


def test_ensemble_members_differ_and_refit_identically(ensemble):
    task, train, val, settings, fits = ensemble
    assert len(fits) == 3
    w = [next(f.model.parameters()).detach().numpy() for f in fits]
    assert not np.allclose(w[0], w[1]) and not np.allclose(w[1], w[2])
    again = fit_ensemble("discrete", train, val, settings, members=2, seed=0)
    np.testing.assert_array_equal(next(again[1].model.parameters()).detach().numpy(), w[1])
    spread = EnsembleSurrogate([f.model for f in fits]).disagreement(val.states[:, 0], val.actions)
    assert spread.shape == val.states[:, 1:].shape and spread.mean() > 0
    with pytest.raises(ControlkitError, match="surrogate.members: a positive number"):
        fit_ensemble("discrete", train, val, settings, members=0, seed=0)


class _Growth(nn.Module):
    """A fish stock growing at rate ``g`` per tick, harvested at rate ``u``, over one 5-tick decision."""

    def __init__(self, g: float) -> None:
        super().__init__()
        self.g = g

    def step(self, x, u):
        return x * (1 + self.g - u) ** 5


def test_cvar_training_changes_the_decision_and_lowers_the_worst_rollouts(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import toy_twin  # noqa: F401  registers toy_harvest

    task = make_task("toy_harvest")
    # five members that disagree on the growth rate: the harvest that is best on average over-fishes the slowest
    ens = EnsembleSurrogate([_Growth(g) for g in (0.0, 0.05, 0.1, 0.15, 0.3)])
    starts = np.random.default_rng(0).uniform(300, 700, (40, 1))
    x0 = torch.as_tensor(np.tile(starts, (5, 1)), dtype=torch.float32)  # every start under every member
    result = {}
    for risk in ("mean", "cvar"):
        settings = ControllerSettings(iterations=300, batch_size=100, lr=2e-2, risk=risk, cvar_alpha=0.2)
        ctrl, _ = train_controller(ens, task, starts, settings, seed=0)

        def policy(k, x, ctrl=ctrl):
            return torch.as_tensor(np.stack([ctrl(k, xi) for xi in x.numpy()]), dtype=torch.float32)

        with torch.no_grad():
            states, us = rollout_policy(ens, policy, x0, task.decisions)
            costs = surrogate_cost(task, x0, states, us).numpy()
        result[risk] = (costs.mean(), cvar(costs, 0.2), us.numpy())
    assert result["cvar"][1] < result["mean"][1] - 0.02  # a lower CVaR (0.598 against 0.649)
    assert result["cvar"][0] > result["mean"][0]  # bought with a higher mean (0.306 against 0.292)
    assert not np.allclose(result["cvar"][2], result["mean"][2], atol=1e-3)  # by other decisions
    with pytest.raises(ControlkitError, match="controller.cvar_weight"):
        risk_loss(torch.ones(3), "cvar", 0.1, 1.5)


def test_twin_control_reports_risk_and_trains_through_an_ensemble(tmp_path):
    config = validate_config({
        "kind": "twin_control", "seed": 1, "twin": "predator_prey", "params": TINY,
        "task": {"burn_in": 40, "interval": 5, "decisions": 6}, "objective": {"settings": {"target": [80, 10]}},
        "data": {"trajectories": 8, "spread": {"wolf_reproduce": 0.2}},
        "surrogate": {"hidden": [16], "train": {"epochs": 3}, "members": 2},
        "controller": {"iterations": 10, "surrogate": "discrete", "risk": "cvar", "cvar_alpha": 0.25},
        "methods": ["none", "neural"],
        "evaluation": {"replicates": 4, "perturbed_replicates": 3, "spread": {"wolf_reproduce": 0.1},
                       "cvar_alpha": 0.25},
        "workers": 1,
    })
    s = json.loads((run_experiment(config, out=tmp_path, quiet=True).run_dir / "summary.json").read_text())
    assert s["ensemble"]["members"] == 2 and len(s["ensemble"]["disagreement_nstd"]) == 3
    for m in s["methods"].values():
        r = m["risk"]
        assert r["alpha"] == 0.25 and r["failure_outcome"] == "extinct" and 0 <= r["failure_probability"] <= 1
        assert r["quantiles"]["p5"] <= r["quantiles"]["p50"] <= r["quantiles"]["p95"] <= r["cvar"] + 1e-12
        assert r["cvar"] >= m["cost_mean"] - 1e-12 and "risk" in m["perturbed"]
    with pytest.raises(ControlkitError, match="data.spread.wolf_speed: not a parameter"):
        validate_config({**config.model_dump(), "data": {"spread": {"wolf_speed": 0.1}}})
