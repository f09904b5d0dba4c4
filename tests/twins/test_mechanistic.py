"""The mechanistic ODE metamodels (controlkit.twins.mechanistic): the companion's forms, least-squares fits, and
their use as a twin_control surrogate."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from controlkit.twins import make_task
from controlkit.twins.mechanistic import (
    METABOLIC_FORM,
    PREDATOR_PREY_FORM,
    MechanisticSurrogate,
    fit_mechanistic,
    form_for,
)

from controlkit.core.errors import ControlkitError
from controlkit.models.data import TransitionData
from controlkit.runner.registry import validate_config
from controlkit.runner.run import run_experiment

DATA = Path(__file__).resolve().parents[1] / "data" / "twins" / "metabolic_companion_averages.npz"


def test_metabolic_form_with_the_companion_fit_follows_their_averaged_abm_runs():
    # The companion's best-fit parameters were fitted to these averages from tick 100 on: integrated here from
    # the tick-100 state with inflow 1.0 and dilution 0.0005, S, P and Q stay within a few percent of the data
    # over 4900 ticks (a wrong rate law or a swapped R/T column would not).
    ref = np.load(DATA)["inflow_1_0"]
    model = MechanisticSurrogate(METABOLIC_FORM, np.array(METABOLIC_FORM.initial), [0, 1, 2, 3, 4], 1.0, 0.0005, 100)
    pred = model.simulate(ref[1:2], np.ones((1, 49, 1)))[0]  # ticks 200, 300, ..., 5000
    truth = ref[2:51]
    for col, tol in ((0, 0.05), (2, 0.1), (3, 0.25), (4, 0.15)):
        err = np.abs(pred[:, col] - truth[:, col]).mean() / truth[:, col].mean()
        assert err < tol, (col, err)


def test_torch_step_matches_numpy_and_passes_gradients_to_the_control():
    model = MechanisticSurrogate(PREDATOR_PREY_FORM, np.array(PREDATOR_PREY_FORM.initial), [2, 0, 1], 1.0, 0.0, 20)
    x0 = np.array([[4000.0, 1900.0, 24000.0]])  # sheep, wolves, grass (the twin's column order)
    acts = np.array([[[0.01, 0.02], [0.0, 0.03]]])
    numpy_states = model.simulate(x0, acts)[0]  # grass, sheep, wolves
    u = torch.tensor(acts, requires_grad=True)
    torch_states = model.rollout(torch.tensor(x0), u)[0]
    np.testing.assert_allclose(torch_states.detach().numpy()[:, [2, 0, 1]], numpy_states, rtol=1e-9)
    torch_states[-1, 1].backward()  # wolves at the end
    assert u.grad[0, :, 1].abs().sum() > 0 and torch.all(u.grad[0, :, 1] < 0)  # culling wolves lowers wolves


def test_least_squares_recovers_a_perturbed_predator_prey_ode():
    # Data from the form itself with three parameters moved by 20-30 %: the fit from the companion's values
    # must cut the residual to (almost) nothing and move those parameters back towards the truth.
    task = make_task("predator_prey_paper", decisions=15)
    form, unit, _ = form_for(task)
    truth_p = np.array(form.initial) * np.array([1.2, 1, 1, 0.8, 1, 1, 1.3, 1])
    gen = MechanisticSurrogate(form, truth_p, [2, 0, 1], unit, 0.0, task.interval)
    rng = np.random.default_rng(0)
    x0 = np.column_stack([rng.uniform(350, 500, 6), rng.uniform(150, 250, 6), rng.uniform(2500, 2800, 6)])
    acts = rng.uniform(0, 0.03, (6, 15, 2))
    states = np.concatenate([x0[:, None], gen.simulate(x0, acts)[..., [1, 2, 0]] / unit], axis=1)
    data = TransitionData(states, acts, np.full(6, 15), {})
    fit = fit_mechanistic(task, data, ("sheep", "wolves", "grass"), max_evaluations=80)
    assert fit.cost < 1e-3 * fit.initial_cost
    moved = np.abs(np.log(np.array(fit.params) / truth_p))
    assert np.all(moved[[0, 3, 6]] < 0.05), moved
    assert fit.initial_params == list(form.initial)  # the report keeps the companion's values, not the fit's
    assert fit.model.params.numpy().tolist() == pytest.approx(fit.params)


def test_twins_without_a_mechanistic_form_are_refused_by_name():
    with pytest.raises(ControlkitError, match="no mechanistic metamodel for the immune twin.*metabolic_paper"):
        form_for(make_task("immune"))
    with pytest.raises(ControlkitError, match="task.apply: hold"):
        form_for(make_task("predator_prey", {"removal": "fraction"}))
    with pytest.raises(ControlkitError, match="mechanistic"):
        validate_config({"kind": "twin_control", "twin": "immune", "methods": ["none", "neural_mechanistic"]})


def test_twin_control_fits_the_mechanistic_metamodel_and_trains_a_controller_through_it(tmp_path):
    config = validate_config({
        "kind": "twin_control", "name": "mech", "seed": 0, "twin": "metabolic_paper", "params": {"scale": 0.01},
        "task": {"interval": 50, "decisions": 6},
        "data": {"trajectories": 5}, "surrogate": {"hidden": [8], "train": {"epochs": 2},
                                                   "mechanistic_evaluations": 5},
        "controller": {"iterations": 3, "surrogate": "ode"},
        "methods": ["none", "neural", "neural_mechanistic"], "evaluation": {"replicates": 2, "perturbed_replicates": 0},
        "workers": 1,
    })
    result = run_experiment(config, out=tmp_path, quiet=True)
    s = json.loads((result.run_dir / "summary.json").read_text())
    mech = s["surrogates"]["mechanistic"]
    assert set(s["surrogates"]) == {"discrete", "ode", "mechanistic"} and len(mech["val_nrmse"]) == 7
    assert mech["details"]["form"] == "metabolic_pathway" and len(mech["details"]["params"]) == 17
    assert mech["details"]["train_mse_fitted"] <= mech["details"]["train_mse_companion_params"]
    assert set(s["methods"]) == {"none", "neural", "neural_mechanistic"}
    assert "paired_diff_vs_neural" in s["methods"]["neural_mechanistic"]
    assert s["methods"]["none"]["parts"]["ratio"]["mean"] == pytest.approx(s["methods"]["none"]["cost_mean"])
