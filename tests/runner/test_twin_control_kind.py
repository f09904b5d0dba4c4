"""The ``twin_control`` experiment kind end to end on a tiny PredatorPrey: summary fields, plots, saved controller
deployed again from its file."""

import json

import pytest

from controlkit.runner.registry import validate_config
from controlkit.runner.run import run_experiment

TINY = {"width": 30, "height": 30, "initial_sheep": 80, "initial_wolves": 20, "removal": "count",
        "max_removal_count": 10}


def test_twin_control_kind_runs_from_config(tmp_path):
    config = validate_config({
        "kind": "twin_control", "name": "tiny", "seed": 1, "twin": "predator_prey", "params": TINY,
        "task": {"burn_in": 40, "interval": 5, "decisions": 6},
        "objective": {"settings": {"target": [80, 10]}},
        "data": {"trajectories": 8}, "surrogate": {"hidden": [16], "train": {"epochs": 5}},
        "controller": {"iterations": 10, "surrogate": "discrete"},
        "methods": ["none", "constant", "few_switch", "ppo", "neural"], "constant": {"levels": 2, "seeds": 1},
        "few_switch": {"levels": 2, "switch_points": [3], "seeds": 1},
        "ppo": {"updates": 2, "curve_points": 2, "curve_seeds": 1},
        "evaluation": {"replicates": 3, "perturbed_replicates": 2, "spread": {"wolf_reproduce": 0.1}},
        "workers": 1,
    })
    result = run_experiment(config, out=tmp_path, quiet=True)
    s = json.loads((result.run_dir / "summary.json").read_text())
    assert set(s["methods"]) == {"none", "constant", "few_switch", "ppo", "neural"}
    assert s["methods"]["few_switch"]["schedules"] == 16 and "paired_diff_vs_neural" in s["methods"]["none"]
    for m in s["methods"].values():
        assert {"cost_mean", "cost_ci95", "parts", "outcomes", "abm_steps", "perturbed"} <= set(m)
    assert s["methods"]["neural"]["abm_steps"] == 8 * (40 + 30)
    assert set(s["surrogates"]) == {"discrete", "ode"} and len(s["surrogates"]["ode"]["val_nrmse"]) == 3
    assert "neural_over_constant" in s["comparisons"] and "neural" in s["timings"]["methods"]
    # the claim under test, paired on the same replicates
    d = s["comparisons"]["few_switch_minus_neural"]
    assert d == s["methods"]["few_switch"]["paired_diff_vs_neural"]
    assert s["comparisons"]["neural_beats_few_switch"] == (d["mean"] - d["ci95"] > 0)
    # PPO within the neural route's tick budget (8 pooled burn-ins of 40 ticks, then 8 episodes of 30 ticks)
    ppo = s["methods"]["ppo"]
    assert ppo["settings"]["abm_ticks_budget"] == s["methods"]["neural"]["abm_steps"] >= ppo["abm_steps"]
    assert ppo["episodes"] == 8 and len(ppo["curve"]["episodes"]) == 8 and len(ppo["curve"]["checkpoints"]) >= 2
    split = s["timings"]["neural"]
    assert split["surrogate"] == "discrete" and split["fit_s"] > 0 and split["controller_s"] > 0
    for name in ("trajectories.png", "costs.png", "surrogate_fit.png", "ppo_curve.png", "controller.json", "metrics.csv",
                 "data.npz"):
        assert (result.run_dir / name).is_file()
    # the saved controller deploys from a file instead of being trained
    again = validate_config({**config.model_dump(), "controller_file": str(result.run_dir / "controller.json"),
                             "methods": ["neural"]})
    s2 = run_experiment(again, out=tmp_path, quiet=True).summary
    assert s2["methods"]["neural"]["cost_mean"] == pytest.approx(s["methods"]["neural"]["cost_mean"])
