"""``twin_control`` with so few trajectories that one is held out: every stage runs and the summary is written
(the surrogate-fit plot used to index a second held-out trajectory and raise IndexError at the very end)."""

import json

from controlkit.runner import validate_config
from controlkit.runner.run import run_experiment

TINY = {"width": 30, "height": 30, "initial_sheep": 80, "initial_wolves": 20, "removal": "count",
        "max_removal_count": 10}


def test_one_held_out_trajectory_still_gives_a_summary_and_plots(tmp_path):
    config = validate_config({
        "kind": "twin_control", "name": "tiny", "seed": 1, "twin": "predator_prey", "params": TINY,
        "task": {"burn_in": 20, "interval": 5, "decisions": 4},
        "objective": {"settings": {"target": [80, 10]}},
        "data": {"trajectories": 4}, "surrogate": {"hidden": [8], "train": {"epochs": 2}},
        "controller": {"iterations": 2, "surrogate": "discrete"},
        "methods": ["none", "neural"], "evaluation": {"replicates": 2, "perturbed_replicates": 0},
        "workers": 1,
    })
    result = run_experiment(config, out=tmp_path, quiet=True)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["data"]["heldout"] == 1 and set(summary["methods"]) == {"none", "neural"}
    assert json.loads((result.run_dir / "meta.json").read_text())["status"] == "completed"
    for name in ("trajectories.png", "costs.png", "surrogate_fit.png"):
        assert (result.run_dir / name).read_bytes()[:4] == b"\x89PNG"
