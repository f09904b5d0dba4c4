"""Sweeps: product of values, one folder per point, sweep.csv; local and Ray give the same numbers."""

import csv
import json

import pytest

from controlkit.runner.cli import main
from controlkit.runner.sweep import parse_sweep

EXP = """\
kind: rollout
seed: 0
env: Pendulum-v1
controller: random
episodes: 2
max_steps: 15
"""


def _sweep(tmp_path, executor):
    path = tmp_path / "sw.yaml"
    path.write_text(EXP)
    out = tmp_path / executor
    args = ["sweep", str(path), "seed=0,1", "controller=random,zero", "--executor", executor,
            "--workers", "2", "--out", str(out), "--quiet"]
    assert main(args) == 0
    (sweep_dir,) = list(out.glob("sw/sweep-*"))
    with open(sweep_dir / "sweep.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 and all(r["status"] == "completed" for r in rows)
    assert len([p for p in sweep_dir.iterdir() if p.is_dir()]) == 4
    return {(r["seed"], r["controller"]): float(r["return_mean"]) for r in rows}


def test_parse_sweep_product():
    assert parse_sweep(["a=1,2", "b=x"]) == [["a=1", "b=x"], ["a=2", "b=x"]]
    assert parse_sweep(["l=[1,2]"]) == [["l=[1,2]"]]


def test_local_sweep_matches_a_single_run(tmp_path):
    got = _sweep(tmp_path, "local")
    path = tmp_path / "one.yaml"
    path.write_text(EXP)
    assert main(["run", str(path), "seed=1", "controller=zero", "--out", str(tmp_path / "one"), "--quiet"]) == 0
    (summary,) = (tmp_path / "one").glob("one/*/summary.json")
    assert got[("1", "zero")] == json.loads(summary.read_text())["return_mean"]
    assert got[("0", "zero")] != got[("1", "zero")]  # different seeds, different initial states
    assert got[("0", "random")] != got[("0", "zero")]


@pytest.mark.ray
def test_ray_sweep_gives_the_same_numbers_as_local(tmp_path):
    assert _sweep(tmp_path, "ray") == _sweep(tmp_path, "local")


def test_sweep_bad_point_fails_before_any_folder(tmp_path, capsys):
    path = tmp_path / "sw.yaml"
    path.write_text(EXP)
    assert main(["sweep", str(path), "episodes=1,-1", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "episodes" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
