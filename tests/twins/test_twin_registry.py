"""A user's twin plugs in through the public registry: gym env, task, and both twin experiments from YAML."""

import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from controlkit.twins import TwinSpec, get_twin, make_task, register_twin, twin_names
from controlkit.twins.objectives import PredatorPreyObjective
from controlkit.twins.predator_prey import PredatorPrey
from gymnasium.utils.env_checker import check_env

import controlkit  # noqa: F401
from controlkit.core.errors import ControlkitError
from controlkit.runner.registry import load_config
from controlkit.runner.run import run_experiment

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture()
def toy(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    sys.modules.pop("toy_twin", None)
    return "toy_twin:SPEC"


def test_builtin_twins_are_registered():
    assert {"immune", "metabolic", "predator_prey"} <= set(twin_names())
    spec = get_twin("predator_prey")
    assert spec.model is PredatorPrey and spec.objective is PredatorPreyObjective
    with pytest.raises(ControlkitError, match="twin: unknown value 'zoo'"):
        get_twin("zoo")


def test_yaml_path_form_registers_a_users_twin_and_its_env(toy):
    spec = get_twin(toy)
    assert spec.name == "toy_harvest" and "toy_harvest" in twin_names()
    env = gym.make("controlkit/ToyHarvest-v0")
    assert env.spec.max_episode_steps == 10
    check_env(env.unwrapped)
    task = make_task("toy_harvest", weights={"catch": 1.0})
    assert task.objective.weights == {"tracking": 1.0, "catch": 1.0} and task.objective.target == 500.0


def test_bad_twin_paths_and_specs_are_named():
    with pytest.raises(ControlkitError, match="twin: cannot load 'no_such_module:SPEC'"):
        get_twin("no_such_module:SPEC")
    with pytest.raises(ControlkitError, match="not a controlkit.twins.TwinSpec"):
        get_twin("numpy:pi")
    with pytest.raises(ControlkitError, match="task.horizon: unknown task setting"):
        TwinSpec("predator_prey", PredatorPrey, PredatorPreyObjective, task={"horizon": 3})
    with pytest.raises(ControlkitError, match="objective: PredatorPreyObjective scores twin 'predator_prey'"):
        register_twin(TwinSpec("wolves_only", PredatorPrey, PredatorPreyObjective))


def test_users_twin_runs_both_twin_experiments_from_yaml(toy, tmp_path):
    sim = tmp_path / "sim.yaml"
    sim.write_text(f'kind: twin_simulate\nseed: 0\ntwin: "{toy}"\nsteps: 30\nreplicates: 2\ncontrol: [0.05]\n'
                   "workers: 1\n")
    summary = run_experiment(load_config(sim), out=tmp_path, quiet=True).summary
    assert json.dumps(summary)  # JSON-able
    ctl = tmp_path / "ctl.yaml"
    ctl.write_text(f'kind: twin_control\nseed: 0\ntwin: "{toy}"\ndata: {{trajectories: 6}}\n'
                   "surrogate: {hidden: [8], train: {epochs: 3}}\ncontroller: {iterations: 5, surrogate: discrete}\n"
                   "methods: [none, bang_bang, neural]\nevaluation: {replicates: 3, perturbed_replicates: 0}\n"
                   "workers: 1\n")
    result = run_experiment(load_config(ctl), out=tmp_path, quiet=True)
    methods = result.summary["methods"]
    assert set(methods) == {"none", "bang_bang", "neural"}
    assert all(np.isfinite(m["cost_mean"]) for m in methods.values())
    assert result.summary["task"]["decisions"] == 10  # the spec's default horizon
