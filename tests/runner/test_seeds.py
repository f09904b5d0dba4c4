"""Random streams: runs with different seeds share no episode, trajectory or replicate; within one run, every
planner/arm sees the same ones (common random numbers); the same seed repeats everything."""

import csv
from pathlib import Path

import numpy as np

from controlkit.core.seeding import spawn_seeds
from controlkit.models.data import collect
from controlkit.runner.cli import main

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def test_spawned_seeds_are_disjoint_across_roots_and_streams_and_repeat():
    a, b = spawn_seeds(0, 400), spawn_seeds(1, 400)
    assert not set(a) & set(b)  # with seed + i, roots 0 and 1 shared 399 of 400
    assert not set(a) & set(spawn_seeds(0, 400, "data"))
    assert spawn_seeds(0, 400) == a and spawn_seeds(0, 3) == a[:3]
    assert all(0 <= s < 2**31 for s in a + b)


def _metrics(out: Path) -> list[dict]:
    (run,) = out.glob("*/*")
    with open(run / "metrics.csv") as fh:
        return list(csv.DictReader(fh))


def test_rollout_runs_with_neighbouring_seeds_share_no_episode(tmp_path):
    rows = {}
    for seed in (0, 1, 0):
        out = tmp_path / f"s{seed}-{len(rows)}"
        assert main(["run", str(EXPERIMENTS / "rollout_pendulum.yaml"), f"seed={seed}", "episodes=5", "max_steps=5",
                     "--out", str(out), "-q"]) == 0
        rows[len(rows)] = _metrics(out)
    seeds = [[r["seed"] for r in rows[k]] for k in range(3)]
    assert not set(seeds[0]) & set(seeds[1])
    assert seeds[0] == seeds[2] and [r["episode_return"] for r in rows[0]] == [r["episode_return"] for r in rows[2]]


def test_collected_trajectories_differ_across_seeds_and_repeat_within_one():
    d0 = collect("Pendulum-v1", 30, 3, seed=0, behaviour="random")
    d1 = collect("Pendulum-v1", 30, 3, seed=1, behaviour="random")
    again = collect("Pendulum-v1", 30, 3, seed=0, behaviour="random")
    np.testing.assert_array_equal(d0.states, again.states)
    starts0 = {tuple(np.round(s, 12)) for s in d0.states[:, 0]}
    starts1 = {tuple(np.round(s, 12)) for s in d1.states[:, 0]}
    assert not starts0 & starts1  # seed + i shared 29 of 30 starts


def test_twin_arms_share_their_replicate_seeds_within_a_run(tmp_path):
    out = tmp_path / "runs"
    assert main(["run", str(EXPERIMENTS / "twin_predator_prey_baseline.yaml"), "steps=3", "replicates=3",
                 "workers=1", "--out", str(out), "-q"]) == 0
    rows = _metrics(out)
    by_arm: dict[str, list[str]] = {}
    for r in rows:
        by_arm.setdefault(r["arm"], []).append(r["seed"])
    assert set(by_arm) == {"baseline", "cull_wolves_1pct"}
    assert by_arm["baseline"] == by_arm["cull_wolves_1pct"] and len(set(by_arm["baseline"])) == 3
    assert [int(s) for s in by_arm["baseline"]] == spawn_seeds(0, 3, "replicates")
