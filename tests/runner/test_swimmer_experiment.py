"""The ``swimmer`` experiment kind: a tiny end-to-end run and config errors that name the field."""

import json

import pytest

from controlkit.core.errors import ControlkitError
from controlkit.core.seeding import spawn_seeds
from controlkit.runner.registry import validate_config
from controlkit.runner.run import run_experiment

TINY = {
    "kind": "swimmer", "name": "tiny", "seed": 3, "n_links": 3, "replicates": 2, "eval_every": 2000,
    "eval_episodes": 1, "threshold": 250.0, "transfer_links": [3, 4], "figures": True,
    "policies": [
        {"name": "ncap", "type": "ncap", "total_steps": 2000, "es": {"population": 2, "sigma": 0.05, "lr": 0.1}},
        {"name": "mlp", "type": "mlp", "total_steps": 2000, "replicates": 1, "mlp": {"hidden": [8]},
         "es": {"population": 2}},
    ],
}


def test_tiny_swimmer_experiment(tmp_path):
    result = run_experiment(validate_config(TINY), run_dir=tmp_path / "run", quiet=True)
    s = json.loads((result.run_dir / "summary.json").read_text())
    ncap, mlp = s["policies"]["ncap"], s["policies"]["mlp"]
    assert ncap["params"] == 4 and ncap["replicates"] == 2 and mlp["replicates"] == 1
    assert [c["env_steps"] for c in ncap["curve"]] == [0, 2000]
    assert set(ncap["transfer"]) == {"3", "4"} and "transfer" not in mlp  # an MLP cannot change body length
    assert ncap["initial_return"] > 200 > mlp["initial_return"]  # the circuit swims before training
    first = spawn_seeds(3, 1, "training")[0]  # the run's first training seed, shared by every policy
    for name in ("learning_curves.png", "transfer.png", "activity.png", f"policies/ncap_seed{first}.npz",
                 f"policies/mlp_seed{first}.npz", "metrics.csv"):
        assert (result.run_dir / name).is_file(), name


@pytest.mark.parametrize("change, field", [
    ({"task": "navigate"}, "navigation"),
    ({"policies": [{"name": "a", "type": "ncap", "es": {"population": 3}}]}, "population"),
    ({"policies": [{"name": "a", "type": "ncap", "ncap": {"oscillator_period": 0}}]}, "oscillator_period"),
    ({"policies": [{"name": "a", "type": "ncap", "wings": 2}]}, "wings"),
    ({"n_links": 2}, "n_links"),
    ({"transfer_links": [2, 6]}, "transfer_links"),
    ({"policies": [{"name": "a", "type": "snake"}]}, "type"),
])
def test_config_errors_name_the_field(change, field):
    with pytest.raises(ControlkitError, match=field):
        validate_config({**TINY, **change})
