"""The twin_simulate experiment kind: a real (tiny) run end to end, and config errors."""

import json
import re

import numpy as np
import pytest

from controlkit.core.errors import ControlkitError
from controlkit.runner.kinds.twin_simulate import bands
from controlkit.runner.registry import validate_config
from controlkit.runner.run import run_experiment

PP = {"width": 15, "height": 15, "initial_sheep": 20, "initial_wolves": 6}


def _config(**kw):
    data = {"kind": "twin_simulate", "name": "t", "seed": 5, "twin": "predator_prey", "params": PP, "steps": 40,
            "replicates": 3, "workers": 1, "control": [0.0, 0.0]}
    data.update(kw)
    return validate_config(data)


def test_two_arms_run_end_to_end(tmp_path):
    cfg = _config(arms={"free": {}, "cull": {"control": [0.0, 0.2]},
                        "late": {"schedule": [{"start": 0, "control": [0.0, 0.0]},
                                              {"start": 20, "control": [0.5, 0.0]}]}})
    result = run_experiment(cfg, run_dir=tmp_path / "run", quiet=True)
    d = result.run_dir
    assert (d / "trajectories.png").stat().st_size > 1000
    data = np.load(d / "trajectories.npz")
    assert list(data["observables"]) == ["sheep", "wolves", "grass"]
    free, cull, late = data["free"], data["cull"], data["late"]
    assert free.shape == cull.shape == (3, 41, 3)
    np.testing.assert_array_equal(free[:, 0], cull[:, 0])  # common random numbers: same start per replicate
    np.testing.assert_array_equal(free[:, :21], late[:, :21])  # identical until the schedule switches
    assert cull[:, 1:, 1].mean() < free[:, 1:, 1].mean()
    summary = json.loads((d / "summary.json").read_text())
    arm = summary["arms"]["cull"]
    assert arm["outcomes"]["final_wolves"]["mean"] == pytest.approx(cull[:, -1, 1].mean())
    assert arm["outcomes"]["final_wolves"]["n"] == 3
    rows = (d / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 9 and rows[0].startswith("arm,replicate,seed")


def test_same_seed_same_results(tmp_path):
    a = run_experiment(_config(), run_dir=tmp_path / "a", quiet=True).summary
    b = run_experiment(_config(), run_dir=tmp_path / "b", quiet=True).summary
    a.pop("timings"), b.pop("timings")
    assert a == b


def test_bands_contain_the_mean():
    trajs = np.random.default_rng(0).normal(size=(10, 5, 2))
    b = bands(trajs)
    assert np.all(b["ci_low"] <= b["mean"]) and np.all(b["mean"] <= b["ci_high"])
    assert np.all(b["p2_5"] <= b["ci_low"]) and np.all(b["ci_high"] <= b["p97_5"])


@pytest.mark.parametrize("kw, field", [
    ({"twin": "sir"}, "twin"),
    ({"params": {"wolfs": 2}}, "params.wolfs: unknown parameter"),
    ({"arms": {"a": {"params": {"width": 1, "height": 1}}}}, "arms.a.params.initial_sheep"),
    ({"control": [0.0, -1.0]}, "control[1] (cull_wolves)"),
    ({"control": [0.0]}, "control: expected shape (2,)"),
    ({"control": None, "schedule": [{"start": 5, "control": [0.0, 0.0]}]}, "schedule: segment starts"),
    ({"replicates": 0}, "replicates"),
])
def test_bad_configs_name_the_field(kw, field):
    with pytest.raises(ControlkitError, match=re.escape(field)):
        _config(**kw)


@pytest.mark.ray
@pytest.mark.slow
def test_ray_executor_gives_the_local_numbers(tmp_path):
    local = run_experiment(_config(), run_dir=tmp_path / "local", quiet=True).summary
    ray = run_experiment(_config(executor="ray", workers=2), run_dir=tmp_path / "ray", quiet=True).summary
    assert local["arms"] == ray["arms"]
