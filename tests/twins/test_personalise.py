"""Observation models, the particle filter, SBI calibration and the twin_personalise kind (on the toy twin of
examples/toy_twin.py, which simulates in microseconds, and on a small predator–prey)."""

import copy
import sys
from pathlib import Path

import numpy as np
import pytest
from controlkit.twins import ObservationModel, make_observation, make_task
from controlkit.twins.personalise import (
    CostSurface,
    ParameterPrior,
    ParticleFilter,
    control_grid,
    features,
    pilot_measurements,
    posterior_samples,
    simulate_feature,
    train_posterior,
)

from controlkit.core.errors import ControlkitError
from controlkit.runner.registry import validate_config
from controlkit.runner.run import run_experiment

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PP_SMALL = {"width": 21, "height": 21, "initial_sheep": 40, "initial_wolves": 15}


@pytest.fixture()
def toy(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    sys.modules.pop("toy_twin", None)
    return "toy_twin:SPEC"


def test_observation_model_samples_measured_columns_with_noise_and_delay():
    obs = ObservationModel(("wolves",), noise=0.1, interval=4, delay=2)
    traj = np.column_stack([np.arange(13.0), 100 + np.arange(13.0), np.zeros(13)])  # sheep, wolves, grass
    np.testing.assert_array_equal(obs.sample_ticks(12), [4, 8, 12])
    np.testing.assert_array_equal(obs.true_values(traj, ("sheep", "wolves", "grass")), [[104], [108], [112]])
    m = obs.measure(traj, ("sheep", "wolves", "grass"), np.random.default_rng(0))
    truth = np.array([[104], [108], [112]])
    assert m.shape == (3, 1) and not np.allclose(m, truth) and np.all(np.abs(m / truth - 1) < 0.5)
    assert obs.available(12) == 14
    # the likelihood prefers the truth to a value three noise sd away
    ll = obs.log_likelihood(np.array([100.0]), np.array([[100.0], [130.0]]))
    assert ll[0] > ll[1]
    # a pilot only returns the samples available by its end
    task = make_task("predator_prey", PP_SMALL, burn_in=10)
    _, measured, true = pilot_measurements(task, ObservationModel(("sheep",), interval=2, delay=3), {}, seed=1)
    assert measured.shape == (3, 1)  # samples at ticks 2, 4, 6 (8 and 10 arrive after tick 10)


@pytest.mark.parametrize("kwargs, field", [({"observables": ()}, "observation.observables"),
                                           ({"observables": ("wolves",), "noise": -1}, "observation.noise"),
                                           ({"observables": ("wolves",), "interval": 0}, "observation.interval"),
                                           ({"observables": ("wolves",), "delay": -1}, "observation.delay")])
def test_bad_observation_models_name_the_field(kwargs, field):
    with pytest.raises(ControlkitError, match=field):
        ObservationModel(**kwargs)


def test_each_twin_has_a_default_observation_model():
    for twin, measured in (("predator_prey", ("sheep", "wolves")), ("immune", ("virus", "pro_inflammatory")),
                           ("metabolic", ("R", "S"))):
        assert make_observation(twin).observables == measured
    assert make_observation("immune").delay == 6
    with pytest.raises(ControlkitError, match="observation.observables: 'lynx' is not an observable"):
        make_observation("predator_prey", observables=["lynx"])


def test_particle_filter_concentrates_on_the_true_parameter(toy):
    # Replicate twins of three growth rates; measurements of a twin with the middle rate put (almost) all weight
    # on the middle particles after a few updates.
    task = make_task(toy, burn_in=1, decisions=4, interval=5)
    obs = ObservationModel(("fish",), noise=0.03, interval=5)
    prior = ParameterPrior({"growth": (0.02, 0.2)})
    thetas = np.repeat([[0.03], [0.1], [0.18]], 4, axis=0)
    twins = [task.make_twin(100 + i, prior.params(th)) for i, th in enumerate(thetas)]
    patient = task.make_twin(7, prior.params([0.1]))
    pf = ParticleFilter(twins, thetas, obs, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    for _ in range(6):
        sched = np.zeros((5, 1))
        truth = patient.run(sched)[-1, pf.cols]
        pred = pf.advance(sched)[:, -1, pf.cols]
        pf.update(obs.add_noise(truth, rng), pred)
    assert pf.mean()[0] == pytest.approx(0.1, abs=0.02)
    assert pf.resamples >= 1 and len({id(t) for t in pf.twins}) == len(pf.twins)  # resampled twins are copies


def test_resampled_twins_have_independent_streams(toy):
    task = make_task(toy)
    twin = task.make_twin(3)
    pf = ParticleFilter([twin, copy.deepcopy(twin)], np.array([[0.1], [0.1]]), make_observation(toy),
                        np.random.default_rng(0), log_weights=np.array([0.0, -50.0]))
    pf._resample()
    a, b = (t.run(None, steps=20)[-1, 0] for t in pf.twins)
    assert a != b  # two copies of one particle do not replay the same randomness


@pytest.mark.slow  # trains a normalising flow: about 10 s on an idle core, a minute on a loaded machine
def test_sbi_posterior_recovers_a_parameter(toy):
    pytest.importorskip("sbi")
    import torch

    torch.set_num_threads(1)  # a small network: more threads only contend on a loaded machine
    task = make_task(toy, burn_in=30)
    obs = ObservationModel(("fish",), noise=0.05, interval=3)
    prior = ParameterPrior({"growth": (0.04, 0.16)})
    thetas = prior.sample(np.random.default_rng(0), 150)
    xs = np.stack([simulate_feature(task, obs, prior, th, 1000 + i) for i, th in enumerate(thetas)])
    posterior = train_posterior(prior, thetas, xs, seed=0, max_epochs=30)
    for truth, seed in ((0.06, 5), (0.14, 6)):
        _, measured, _ = pilot_measurements(task, obs, prior.params([truth]), seed)
        s = posterior_samples(posterior, features(measured), 400, seed=0)
        lo, hi = np.quantile(s[:, 0], [0.05, 0.95])
        assert lo <= truth <= hi and hi - lo < 0.08  # covers the truth, much narrower than the prior (0.12)
    # same seed, same samples
    np.testing.assert_array_equal(posterior_samples(posterior, xs[0], 5, seed=3),
                                  posterior_samples(posterior, xs[0], 5, seed=3))


def test_cost_surface_fits_a_quadratic_and_picks_the_best_control():
    prior = ParameterPrior({"a": (0.0, 1.0)})
    thetas = np.linspace(0, 1, 21)[:, None]
    costs = np.column_stack([(thetas[:, 0] - 0.2) ** 2, (thetas[:, 0] - 0.8) ** 2])
    surface = CostSurface(prior, thetas, costs, ridge=0.0)
    assert surface.residual_sd < 1e-9
    assert surface.best(np.array([[0.1], [0.3]])) == 0 and surface.best(np.array([[0.9]])) == 1
    assert surface.best(np.array([[0.1], [0.9]]), weights=np.array([0.01, 0.99])) == 1
    assert control_grid(make_task("predator_prey"), 3).tolist()[:2] == [[0.0, 0.0], [0.0, 10.0]]


def test_twin_personalise_kind_runs_on_the_toy_twin(toy, tmp_path):
    pytest.importorskip("sbi")
    config = validate_config({
        "kind": "twin_personalise", "seed": 0, "twin": toy, "task": {"burn_in": 30, "decisions": 6},
        "observation": {"observables": ["fish"], "noise": 0.05, "interval": 3},
        "prior": {"growth": [0.04, 0.16]}, "patients": 4,
        "sbi": {"simulations": 80, "max_epochs": 20, "posterior_samples": 200},
        "control": {"levels": 3, "table_draws": 12}, "filter": {"particles": 4}, "workers": 1})
    s = run_experiment(config, out=tmp_path, quiet=True).summary
    assert set(s["methods"]) == {"population", "personalised", "oracle", "filtered"}
    assert 0.0 <= s["coverage_90"]["all"] <= 1.0 and "growth" in s["coverage_90"]
    assert s["methods"]["personalised"]["paired_diff_vs_population"]["ci95"] >= 0
    assert s["timings"]["calibration_per_patient_s"] < s["timings"]["sbi_training_s"]


@pytest.mark.parametrize("change, field", [({"prior": {"lynx_reproduce": [0, 1]}}, "prior.lynx_reproduce"),
                                           ({"prior": {"sheep_reproduce": [0.5, 0.1]}}, "prior.sheep_reproduce"),
                                           ({"observation": {"interval": 500}}, "observation.interval")])
def test_twin_personalise_config_errors_name_the_field(change, field):
    base = {"kind": "twin_personalise", "twin": "predator_prey", "params": PP_SMALL, "task": {"burn_in": 50},
            "prior": {"sheep_reproduce": [0.02, 0.06]}}
    with pytest.raises(ControlkitError, match=field):
        validate_config({**base, **change})
