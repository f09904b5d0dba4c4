"""Twin control layer: surrogates fitted to ABM data, straight-through integer controls, a neural controller
trained through the surrogate and deployed on the real (tiny) PredatorPrey ABM, replicate statistics, bad input."""

import json

import numpy as np
import pytest
import torch
from controlkit.twins.baselines import (
    BangBangController,
    ConstantTwinController,
    SurrogateMPCController,
    best_constant,
    best_few_switch,
    open_loop_optimal,
)
from controlkit.twins.deploy import evaluate, run_episode
from controlkit.twins.neural_control import (
    ControllerSettings,
    NeuralTwinController,
    PolicyNet,
    straight_through_round,
    train_controller,
)
from controlkit.twins.objectives import TwinTask, make_objective
from controlkit.twins.surrogate import (
    SurrogateSettings,
    collect_data,
    fit_surrogate,
    heldout_errors,
    make_surrogate,
    to_compact,
)

from controlkit.core.errors import ControlkitError
from controlkit.core.stats import mean_ci95
from controlkit.runner.registry import validate_config

torch.set_num_threads(1)

TINY = {"width": 30, "height": 30, "initial_sheep": 80, "initial_wolves": 20, "removal": "count",
        "max_removal_count": 10}


def tiny_task(**kw) -> TwinTask:
    args = dict(burn_in=60, interval=5, decisions=10, apply="pulse")
    args.update(kw)
    return TwinTask("predator_prey", TINY, make_objective("predator_prey", target=(80.0, 10.0)), **args)


@pytest.fixture(scope="module")
def data():
    return collect_data(tiny_task(), range(100, 124))


@pytest.fixture(scope="module")
def fitted(data):
    train, val = data.split(0.25, 0)
    settings = SurrogateSettings(hidden=[32, 32], train={"epochs": 40, "batch_size": 32, "lr": 3e-3,
                                                         "rollout_steps": 4, "patience": 40, "eval_steps": 8})
    return train, val, {k: fit_surrogate(k, train, val, settings, seed=0) for k in ("discrete", "ode")}


def test_data_is_seeded_and_shaped(data):
    assert data.states.shape == (24, 11, 3) and data.actions.shape == (24, 10, 2)
    assert np.all(data.actions == np.round(data.actions)) and data.actions.max() <= 10
    again = collect_data(tiny_task(), range(100, 102))
    np.testing.assert_array_equal(again.states, data.states[:2])
    assert data.metadata["abm_steps"] == 24 * (60 + 50)


@pytest.mark.parametrize("kind", ["discrete", "ode"])
def test_surrogate_fitting_reduces_heldout_error(fitted, kind):
    train, val, fits = fitted
    untrained = make_surrogate(kind, 3, 2, SurrogateSettings(hidden=[32, 32]), seed=0)
    untrained.fit_normalisation(train)
    _, before, _ = heldout_errors(untrained, val)
    after = np.asarray(fits[kind].val_nrmse)
    assert np.all(np.isfinite(after))
    assert after.mean() < 0.7 * before.mean(), (kind, before, after)


def test_straight_through_round_passes_gradients():
    x = torch.tensor([0.2, 1.4, 2.6, 3.5], requires_grad=True)
    w = torch.tensor([1.0, -2.0, 3.0, 0.5])
    u = straight_through_round(3.0 * x)
    assert torch.equal(u.detach(), torch.round(3.0 * x.detach()))
    (u * w).sum().backward()
    torch.testing.assert_close(x.grad, 3.0 * w)  # round() alone would give zero gradient


def test_policy_outputs_admissible_integers_and_has_gradients():
    policy = PolicyNet(3, 2, [0, 0], [10, 20], [50, 10, 200], horizon=5, integer=True, seed=0)
    with torch.no_grad():
        policy.net[-1].bias.fill_(0.0)
    obs = torch.tensor([[40.0, 8.0, 150.0], [90.0, 2.0, 20.0]])
    u = policy(2, obs)
    assert torch.all(u == torch.round(u)) and torch.all(u >= 0) and torch.all(u[:, 0] <= 10) and torch.all(u[:, 1] <= 20)
    u.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.parameters())


def test_trained_controller_beats_no_control_on_the_abm(fitted):
    train, _, fits = fitted
    task = tiny_task()
    ctrl, result = train_controller(fits["discrete"].model, task, train.states[:, 0],
                                    ControllerSettings(iterations=150, batch_size=32, lr=1e-2), seed=0)
    assert result.losses[-1] < result.losses[0]
    seeds = range(500, 506)
    neural = evaluate(task, ctrl, seeds)
    none = evaluate(task, ConstantTwinController([0, 0]), seeds)
    assert neural.costs.mean() < none.costs.mean(), (neural.costs, none.costs)
    assert all(np.all(e.decisions == np.round(e.decisions)) for e in neural.episodes)


def test_replicate_evaluation_produces_cis():
    task = tiny_task()
    ev = evaluate(task, ConstantTwinController([2, 1]), range(10, 15))
    s = ev.summary()
    mean, ci = mean_ci95(ev.costs)
    assert s["replicates"] == 5 and s["cost_mean"] == pytest.approx(mean) and s["cost_ci95"] == pytest.approx(ci)
    assert s["cost_ci95"] > 0 and np.isfinite(s["cost_ci95"])
    assert set(s["parts"]) == {"tracking", "effort"} and all(np.isfinite(v["ci95"]) for v in s["parts"].values())
    assert "removed_total" in s["outcomes"]
    # the episode's cost is the weighted sum of its parts, and replicates differ by seed only
    e = ev.episodes[0]
    assert e.cost == pytest.approx(sum(task.objective.weights[k] * v for k, v in e.parts.items()))
    assert run_episode(task, ConstantTwinController([2, 1]), 10).cost == pytest.approx(e.cost)


def test_perturbed_replicates_change_parameters():
    task = tiny_task()
    ev = evaluate(task, ConstantTwinController([0, 0]), range(3), spread={"sheep_reproduce": 0.2})
    values = [e.params["sheep_reproduce"] for e in ev.episodes]
    assert len(set(values)) == 3 and all(0.032 <= v <= 0.048 for v in values)


def test_baselines_act_within_bounds(fitted):
    train, _, fits = fitted
    task = tiny_task(decisions=4)
    bb = run_episode(task, BangBangController(task), 3)
    assert set(np.unique(bb.decisions)) <= {0.0, 10.0}
    ol, predicted = open_loop_optimal(fits["ode"].model, task, train.states[:, 0].mean(0), iterations=20)
    assert ol.schedule.shape == (4, 2) and np.isfinite(predicted)
    mpc = SurrogateMPCController(to_compact(fits["discrete"].model), task, horizon=2, time_limit=2.0)
    ep = run_episode(task, mpc, 3)
    assert np.all((ep.decisions >= 0) & (ep.decisions <= 10)) and len(mpc.solve_times) == 4
    diag = mpc.diagnose(train.states[:3, 0])
    assert diag["plans"] == 3 and diag["binaries_mean"] > 0 and 0 <= diag["time_limit_share"] <= 1
    ctrl, table, steps = best_constant(task, levels=2, seeds=[1])
    assert len(table) == 4 and steps == 4 * (60 + 20)
    assert ctrl.u.tolist() == min(table, key=lambda r: r["cost_mean"])["u"]


def test_controller_file_roundtrip_and_wrong_twin(tmp_path, fitted):
    task = tiny_task()
    ctrl = NeuralTwinController([np.ones((2, 4))], [np.zeros(2)], [0, 0], [10, 10], [1, 1, 1], 10, True,
                                "predator_prey")
    path = ctrl.save(tmp_path / "c.json")
    back = NeuralTwinController.load(path, task)
    np.testing.assert_array_equal(back(0, np.array([1.0, 2.0, 3.0])), ctrl(0, np.array([1.0, 2.0, 3.0])))
    other = json.loads(path.read_text())
    other["twin"] = "immune"
    (tmp_path / "immune.json").write_text(json.dumps(other))
    with pytest.raises(ControlkitError, match="controller_file.*immune twin"):
        NeuralTwinController.load(tmp_path / "immune.json", task)
    with pytest.raises(ControlkitError, match="controller_file.*trained for 10 decisions, the task has 20"):
        NeuralTwinController.load(path, tiny_task(decisions=20))


def test_bad_inputs_name_the_field():
    with pytest.raises(ControlkitError, match=r"objective.weights.comfort.*valid terms: tracking, effort"):
        make_objective("predator_prey", {"comfort": 1.0})
    with pytest.raises(ControlkitError, match="objective.speed"):
        make_objective("predator_prey", speed=3)
    with pytest.raises(ControlkitError, match="twin: unknown value 'zoo'"):
        make_objective("zoo")
    base = {"kind": "twin_control", "twin": "predator_prey", "params": TINY}
    with pytest.raises(ControlkitError, match="task.decisions.*longer than the data supports"):
        validate_config({**base, "task": {"decisions": 40}, "data": {"decisions": 20}})
    with pytest.raises(ControlkitError, match="objective.weights.joy"):
        validate_config({**base, "objective": {"weights": {"joy": 1}}})
    with pytest.raises(ControlkitError, match="methods"):
        validate_config({**base, "methods": ["neural", "oracle"]})
    with pytest.raises(ControlkitError, match="evaluation.spread.gravity"):
        validate_config({**base, "evaluation": {"spread": {"gravity": 0.1}}})
    with pytest.raises(ControlkitError, match="surrogate"):
        validate_config({**base, "surrogate": {"width": 3}})
    with pytest.raises(ControlkitError, match="u_high"):
        tiny_task(u_high=(50.0, 5.0))


def test_config_refuses_a_controller_file_before_running(tmp_path):
    """A saved controller of another twin, control size or horizon is refused when the config is validated, naming
    ``controller_file`` (not after minutes of data collection and fitting)."""
    base = {"kind": "twin_control", "twin": "predator_prey", "params": TINY, "task": {"decisions": 10}}
    immune = NeuralTwinController([np.ones((2, 11))], [np.zeros(2)], [0, 0], [1, 1], np.ones(10), 10, False, "immune")
    with pytest.raises(ControlkitError, match="controller_file.*trained for the immune twin, not predator_prey"):
        validate_config({**base, "controller_file": str(immune.save(tmp_path / "immune.json"))})
    one = NeuralTwinController([np.ones((1, 4))], [np.zeros(1)], [0], [10], [1, 1, 1], 10, True, "predator_prey")
    with pytest.raises(ControlkitError, match="controller_file.*has 1 controls, the task 2"):
        validate_config({**base, "controller_file": str(one.save(tmp_path / "one.json"))})
    with pytest.raises(ControlkitError, match="controller_file.*not a readable twin controller"):
        validate_config({**base, "controller_file": str(tmp_path / "missing.json")})
    good = NeuralTwinController([np.ones((2, 4))], [np.zeros(2)], [0, 0], [10, 10], [1, 1, 1], 10, True,
                                "predator_prey")
    assert validate_config({**base, "controller_file": str(good.save(tmp_path / "ok.json"))}).controller_file


def test_ode_solvers_agree_and_bad_solver_names_the_field(data):
    """RK4 and Euler integrate the same vector field; with many substeps both approach the same solution."""
    x = torch.as_tensor(data.states[:4, 0], dtype=torch.float32)
    u = torch.as_tensor(data.actions[:4, 0], dtype=torch.float32)
    settings = {k: SurrogateSettings(hidden=[16], substeps=n, solver=k) for k, n in (("rk4", 1), ("euler", 64))}
    models = {k: make_surrogate("ode", 3, 2, s, seed=0) for k, s in settings.items()}
    for m in models.values():
        m.fit_normalisation(data)
        with torch.no_grad():
            m.f[-1].weight.mul_(20.0)  # a vector field strong enough for the solvers to differ
    coarse = make_surrogate("ode", 3, 2, SurrogateSettings(hidden=[16], substeps=1, solver="euler"), seed=0)
    coarse.load_state_dict(models["euler"].state_dict())
    with torch.no_grad():
        rk4, fine, rough = models["rk4"].step(x, u), models["euler"].step(x, u), coarse.step(x, u)
    assert (rk4 - fine).abs().max() < 0.1 * (rough - fine).abs().max()
    with pytest.raises(ControlkitError, match="surrogate.*solver"):
        validate_config({"kind": "twin_control", "twin": "predator_prey", "params": TINY,
                         "surrogate": {"solver": "dopri5"}})


def test_best_few_switch_searches_one_switch_schedules_on_the_abm():
    task = tiny_task(decisions=4)
    ctrl, table, steps = best_few_switch(task, levels=2, switch_points=[1, 2], seeds=[1])
    # 4 x 4 (first, then) pairs at the first switch point, the 12 non-constant ones at the second
    assert len(table) == 16 + 12 and steps == 28 * (60 + 20)
    best = min(table, key=lambda r: r["cost_mean"])
    expected = np.vstack([np.tile(best["first"], (best["switch"], 1)), np.tile(best["then"], (4 - best["switch"], 1))])
    np.testing.assert_array_equal(ctrl.schedule, expected)
    constants = [r["cost_mean"] for r in table if r["first"] == r["then"]]
    assert best["cost_mean"] <= min(constants)  # never worse than the best constant of the same grid
    with pytest.raises(ControlkitError, match="few_switch.switch_points"):
        best_few_switch(task, 2, [4], [1])


def test_mip_mpc_without_time_limit_is_deterministic(fitted):
    _, _, fits = fitted
    task = tiny_task(decisions=3)
    net = to_compact(fits["discrete"].model)
    a, b = (run_episode(task, SurrogateMPCController(net, task, horizon=2, time_limit=None), 3) for _ in range(2))
    np.testing.assert_array_equal(a.decisions, b.decisions)
    assert a.cost == b.cost
