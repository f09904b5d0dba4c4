"""The ``sparsify`` experiment kind end to end (tiny), and its bad-input errors (exit 2, no run folder)."""

import csv
import json
import re

import numpy as np
import pytest
import yaml

from controlkit.models.data import collect, save_dataset
from controlkit.models.network import CompactNetwork
from controlkit.runner.cli import main

TINY = {
    "kind": "sparsify",
    "seed": 0,
    "env": "Pendulum-v1",
    "data": {"trajectories": 10, "steps": 25},
    "model": {"hidden": [16, 16]},
    "train": {"epochs": 3, "rollout_steps": 3, "eval_steps": 5, "polish_iterations": 10, "polish_window_stride": 2},
    "sparsify": {"schedule": [16, 8, 4], "search_epochs": 2, "finetune_epochs": 2, "polish_iterations": 5},
}


def _write(tmp_path, **changes):
    cfg = {**TINY, **changes}
    path = tmp_path / "sp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_tiny_sparsify_run(tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["run", str(_write(tmp_path)), "--out", str(out), "--quiet"]) == 0
    (run,) = [p for p in out.glob("*/*") if p.is_dir()]
    summary = json.loads((run / "summary.json").read_text())
    for key in ("relus_dense", "relus_sparse", "identity_neurons", "val_error_dense", "val_error_sparse",
                "model_path"):
        assert key in summary
    assert summary["relus_dense"] == 32 and summary["relus_sparse"] <= 32
    # The dense model was polished after its epochs; the polish keeps its best weights, so it never got worse.
    assert 0 < summary["dense_polish_iterations"] <= 10
    assert summary["val_error_dense"] <= summary["val_error_dense_before_polish"]
    with open(run / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["target"]) for r in rows] == [32, 16, 8, 4]
    assert all(int(r["n_relu"]) <= int(r["target"]) for r in rows)
    assert {"n_identity", "val_one_step", "val_rollout"} <= set(rows[0])
    assert all(0 < int(r["polish_iterations"]) <= 5 for r in rows[1:])
    net = CompactNetwork.load(run / summary["model_path"])
    assert net.n_relu == summary["relus_sparse"] and net.metadata["env"] == "Pendulum-v1"
    assert summary["export_max_abs_diff"] < 1e-5
    stages = ("collect", "dense", "sparsify", "export")
    assert {f"{s}_{kind}" for s in stages for kind in ("s", "cpu_s")} <= set(summary["timings"])
    assert (run / "accuracy_sparsity.png").read_bytes()[:4] == b"\x89PNG"
    assert "sparse model:" in capsys.readouterr().out
    # The run's own dataset can feed another run.
    again = _write(tmp_path, data={"file": str(run / "dataset.npz")}, seed=1)
    assert main(["run", str(again), "--out", str(tmp_path / "runs2"), "--quiet"]) == 0


def _wrong_shape_file(tmp_path):
    data = collect("Pendulum-v1", 3, 5, seed=0)
    data.states = np.concatenate([data.states, data.states[..., :1]], axis=2)  # nx 4, Pendulum has 3
    data.metadata = {}
    return str(save_dataset(data, tmp_path / "wrong.npz"))


@pytest.mark.parametrize("changes, message", [
    ({"env": "NoSuchEnv-v0"}, "env: unknown gymnasium env id"),
    ({"env": "CartPole-v1"}, "env: 'CartPole-v1' cannot be used: its action space is Discrete"),
    ({"sparsify": {"schedule": [8, 16]}}, "sparsify.schedule: the schedule must strictly decrease"),
    ({"sparsify": {"schedule": [40, 8]}}, "sparsify.schedule: first target 40 ReLUs exceeds the network's 32"),
    ({"data": {"file": "/nonexistent/d.npz"}}, "data.file: no such dataset file"),
    ("wrong_shape", r"data.file: .* has nx \(state size\) 4, the env needs 3"),
    ({"data": {"behaviour": "sinusoid"}}, "data.behaviour: Input should be 'random' or 'correlated'"),
    ({"data": {"steps": 4}}, "train.eval_steps: 5-step validation needs trajectories that long"),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, changes, message):
    if changes == "wrong_shape":
        changes = {"data": {"file": _wrong_shape_file(tmp_path)}}
    out = tmp_path / "runs"
    assert main(["run", str(_write(tmp_path, **changes)), "--out", str(out), "--quiet"]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not out.exists() or not any(out.rglob("*"))
