"""Throughput of the digital twins, side by side with Mesa's own WolfSheep example, on one core.

Measures (in one run, interleaving ours and Mesa's so both see the same machine load):

1. PredatorPrey vs ``mesa.examples.advanced.wolf_sheep`` at 51x51, 100 sheep, 50 wolves and the example's
   rates: animal-steps per second (sum over ticks of the animals alive at the start of the tick, / wall time).
   Two comparisons: the example as shipped (sheep flee wolves, wolves seek sheep), and the example's own agents
   with its move replaced by a uniform random von Neumann step, i.e. exactly the rules of
   ``PredatorPrey(movement="grid")``. Target: ours >= 1.5x Mesa.
2. ImmuneTwin: wall time of one 14-day episode (2016 ticks) at 51x51 (target <= 30 s), agent-steps/s (epithelial
   cells + immune cells) and the share of the field updates (diffusion + decay of the three fields).
3. MetabolicPathway at scale 1.0: wall time of 1000 ticks and molecule-steps/s.

Run: ``.venv/bin/python benchmarks/twin_throughput.py [--quick]``; writes benchmarks/results/twin_throughput.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import controlkit.twins.immune as immune_module  # noqa: E402
from controlkit.twins import ImmuneTwin, MetabolicPathway, PredatorPrey  # noqa: E402

from controlkit.core.io import atomic_write_json  # noqa: E402

RATES = dict(initial_sheep=100, initial_wolves=50, sheep_reproduce=0.04, wolf_reproduce=0.05,
             wolf_gain_from_food=20, sheep_gain_from_food=4, grass_regrowth_time=30)


def _mesa_models():
    """Mesa's WolfSheep as shipped, and the same model with a uniform random-walk move."""
    from mesa.examples.advanced.wolf_sheep.agents import GrassPatch, Sheep, Wolf
    from mesa.examples.advanced.wolf_sheep.model import WolfSheep
    from mesa.experimental.devs import ABMSimulator

    class WalkingSheep(Sheep):
        def move(self):
            self.cell = self.cell.neighborhood.select_random_cell()

    class WalkingWolf(Wolf):
        def move(self):
            self.cell = self.cell.neighborhood.select_random_cell()

    class RandomWalkWolfSheep(WolfSheep):
        """The example's model with its agents swapped for random walkers (setup copied from WolfSheep)."""

        def __init__(self, seed, simulator, **kw):
            import mesa
            from mesa.datacollection import DataCollector
            from mesa.discrete_space import OrthogonalVonNeumannGrid

            mesa.Model.__init__(self, seed=seed)
            self.simulator = simulator
            self.simulator.setup(self)
            self.grid = OrthogonalVonNeumannGrid([51, 51], torus=True, capacity=float("inf"), random=self.random)
            self.datacollector = DataCollector({"Wolves": lambda m: len(m.agents_by_type.get(WalkingWolf, [])),
                                                "Sheep": lambda m: len(m.agents_by_type.get(WalkingSheep, []))})
            n_s, n_w = kw["initial_sheep"], kw["initial_wolves"]
            WalkingSheep.create_agents(self, n_s, energy=self.rng.random((n_s,)) * 2 * kw["sheep_gain_from_food"],
                                       p_reproduce=kw["sheep_reproduce"], energy_from_food=kw["sheep_gain_from_food"],
                                       cell=self.random.choices(self.grid.all_cells.cells, k=n_s))
            WalkingWolf.create_agents(self, n_w, energy=self.rng.random((n_w,)) * 2 * kw["wolf_gain_from_food"],
                                      p_reproduce=kw["wolf_reproduce"], energy_from_food=kw["wolf_gain_from_food"],
                                      cell=self.random.choices(self.grid.all_cells.cells, k=n_w))
            for cell in self.grid:
                grown = self.random.choice([True, False])
                GrassPatch(self, 0 if grown else self.random.randrange(0, kw["grass_regrowth_time"]),
                           kw["grass_regrowth_time"], cell)
            self.running = True
            self.datacollector.collect(self)

        def step(self):
            for cls in (WalkingSheep, WalkingWolf):
                if cls in self.agents_by_type:
                    self.agents_by_type[cls].shuffle_do("step")
            self.datacollector.collect(self)

    def animals(model):
        return sum(len(s) for cls, s in model.agents_by_type.items() if issubclass(cls, (Sheep, Wolf)))

    def shipped(seed):
        sim = ABMSimulator()
        return WolfSheep(width=51, height=51, seed=seed, simulator=sim, **RATES), sim

    def walking(seed):
        sim = ABMSimulator()
        return RandomWalkWolfSheep(seed, sim, **RATES), sim

    return shipped, walking, animals


def bench_predator_prey(ticks: int, seeds: list[int]) -> dict:
    shipped, walking, animals = _mesa_models()
    totals = {k: [0, 0.0] for k in ("mesa_example", "mesa_random_walk", "ours_grid", "ours_netlogo")}
    for seed in seeds:  # interleave so every contender sees the same load
        for name, make in (("mesa_example", shipped), ("mesa_random_walk", walking)):
            model, sim = make(seed)
            t0 = time.perf_counter()
            for _ in range(ticks):
                totals[name][0] += animals(model)
                sim.run_for(1)
            totals[name][1] += time.perf_counter() - t0
        for name, movement in (("ours_grid", "grid"), ("ours_netlogo", "netlogo")):
            twin = PredatorPrey(seed=seed, movement=movement, **RATES)
            t0 = time.perf_counter()
            for _ in range(ticks):
                obs = twin.observe()
                totals[name][0] += int(obs[0] + obs[1])
                twin.step()
            totals[name][1] += time.perf_counter() - t0
    rates = {k: n / t for k, (n, t) in totals.items()}
    return {
        "ticks_per_run": ticks, "seeds": seeds,
        "animal_steps_per_s": rates,
        "animal_steps": {k: v[0] for k, v in totals.items()},
        "wall_s": {k: v[1] for k, v in totals.items()},
        "ratio_same_rules": rates["ours_grid"] / rates["mesa_random_walk"],
        "ratio_vs_shipped_example": rates["ours_netlogo"] / rates["mesa_example"],
        "target_ratio": 1.5,
    }


def bench_immune(seed: int) -> dict:
    spent = [0.0, 0]
    plain = immune_module.diffuse

    def timed(*args, **kw):
        t0 = time.perf_counter()
        plain(*args, **kw)
        spent[0] += time.perf_counter() - t0
        spent[1] += 1

    immune_module.diffuse = timed  # count the field updates inside a real episode
    try:
        twin = ImmuneTwin(seed=seed)
        cells = twin.cells
        immune_steps = 0
        t0 = time.perf_counter()
        for _ in range(2016):
            immune_steps += twin.kind.size
            twin.step()
        wall = time.perf_counter() - t0
    finally:
        immune_module.diffuse = plain
    outcome = twin.summarize(twin.trajectory())
    return {
        "ticks": 2016, "grid": "51x51", "episode_wall_s": wall, "target_s": 30.0,
        "ms_per_tick": 1e3 * wall / 2016,
        "agent_steps_per_s": (cells * 2016 + immune_steps) / wall,
        "immune_cell_steps_per_s": immune_steps / wall,
        "mean_immune_cells": immune_steps / 2016,
        "field_update_s": spent[0], "field_update_share": spent[0] / wall,
        "field_update_us_per_field_tick": 1e6 * spent[0] / max(1, spent[1]),
        "outcome": outcome,
    }


def bench_metabolic(ticks: int, seed: int) -> dict:
    twin = MetabolicPathway(seed=seed, scale=1.0)
    molecules = 0
    t0 = time.perf_counter()
    for _ in range(ticks):
        molecules += int(twin.observe()[:5].sum()) + twin.enz_type.size
        twin.step()
    wall = time.perf_counter() - t0
    return {"ticks": ticks, "scale": 1.0, "run_wall_s": wall, "ms_per_tick": 1e3 * wall / ticks,
            "molecule_steps_per_s": molecules / wall, "molecules_at_start": int(twin.trajectory()[0, :5].sum())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer ticks and seeds (a smoke run)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "twin_throughput.json"))
    args = ap.parse_args()
    import mesa

    load_before = os.getloadavg()
    pp = bench_predator_prey(100 if args.quick else 500, [0] if args.quick else [0, 1, 2])
    im = bench_immune(0)
    mp = bench_metabolic(100 if args.quick else 1000, 0)
    rows = [
        ("PredatorPrey grid walk vs Mesa example w/ random walk (same rules)",
         f"{pp['animal_steps_per_s']['ours_grid']:,.0f} vs {pp['animal_steps_per_s']['mesa_random_walk']:,.0f} "
         "animal-steps/s", f"{pp['ratio_same_rules']:.1f}x (target 1.5x)"),
        ("PredatorPrey NetLogo walk vs Mesa example as shipped",
         f"{pp['animal_steps_per_s']['ours_netlogo']:,.0f} vs {pp['animal_steps_per_s']['mesa_example']:,.0f} "
         "animal-steps/s", f"{pp['ratio_vs_shipped_example']:.1f}x"),
        ("ImmuneTwin 14 days 51x51", f"{im['episode_wall_s']:.1f} s ({im['ms_per_tick']:.2f} ms/tick)",
         f"target 30 s: {'met' if im['episode_wall_s'] <= 30 else 'NOT met'}"),
        ("ImmuneTwin agent-steps/s (epithelium + immune)", f"{im['agent_steps_per_s']:,.0f}",
         f"fields {100 * im['field_update_share']:.0f}% of time, {im['field_update_us_per_field_tick']:.0f} us/field"),
        ("Metabolic scale 1.0", f"{mp['ticks']} ticks in {mp['run_wall_s']:.1f} s",
         f"{mp['molecule_steps_per_s']:,.0f} molecule-steps/s"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, verdict in rows:
        print(f"{name:<{width}}  {value:<40}  {verdict}")
    result = {
        "command": "python benchmarks/twin_throughput.py" + (" --quick" if args.quick else ""),
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "mesa": mesa.__version__, "numpy": np.__version__,
        "predator_prey": pp, "immune": im, "metabolic": mp,
    }
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
