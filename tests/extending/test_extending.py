"""docs/extending.md, tested: a user's env, controller, planner and experiment kind plug in from YAML through
the public registries (``module:Name`` paths), without editing controlkit."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import controlkit
from controlkit.planning import get_planner, register_planner
from controlkit.runner import load_config, run_experiment

HERE = Path(__file__).resolve().parent
FIXTURE_MODEL = HERE.parent / "data" / "push_16relu_model.npz"


@pytest.fixture
def toy_path(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


def test_own_env_and_controller_run_from_yaml(tmp_path, toy_path):
    cfg = load_config(_yaml(tmp_path, "kind: rollout\nseed: 0\nenv: 'toy_extensions:Drift-v0'\n"
                                      "controller: 'toy_extensions:homing'\ncontroller_kwargs: {gain: 0.5}\n"
                                      "episodes: 2\n"))
    run = run_experiment(cfg, out=tmp_path / "runs", quiet=True)
    assert run.summary["episodes"] == 2
    assert run.summary["return_mean"] > -50  # homing reaches 0 within 20 steps from |x| <= 5 at 0.5 per step


def test_own_planner_runs_from_yaml_next_to_a_builtin(tmp_path, toy_path):
    text = (f"kind: model_based_control\nseed: 0\nmodel: {{file: '{FIXTURE_MODEL}'}}\nepisodes: 1\nmax_steps: 3\n"
            "frames: false\ncost: {horizon: 3}\n"
            "planners:\n  hold: {type: 'toy_extensions:HoldPlanner'}\n  greedy: {type: greedy}\n")
    run = run_experiment(load_config(_yaml(tmp_path, text)), out=tmp_path / "runs", quiet=True)
    hold = run.summary["controllers"]["hold"]
    assert hold["fallbacks"] == 0 and hold["episodes"] == 1


def test_register_planner_makes_a_name(toy_path):
    from toy_extensions import HoldPlanner

    register_planner("hold", HoldPlanner)
    assert get_planner("hold") is HoldPlanner and "hold" in controlkit.planning.planner_names()


def test_unknown_planner_names_the_field_and_choices(tmp_path):
    text = (f"kind: model_based_control\nmodel: {{file: '{FIXTURE_MODEL}'}}\n"
            "planners:\n  p: {type: nope}\n")
    with pytest.raises(controlkit.ControlkitError, match=r"planners\.p\.type.*mppi"):
        load_config(_yaml(tmp_path, text))


def test_own_kind_runs_from_the_cli(tmp_path):
    path = _yaml(tmp_path, "kind: 'toy_extensions:COUNT'\nname: count\nseed: 3\nn: 5\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "controlkit.runner.cli", "run", str(path), "--out",
                           str(tmp_path / "runs")], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (summary,) = (tmp_path / "runs").rglob("summary.json")
    assert 0 <= json.loads(summary.read_text())["total"] <= 45
