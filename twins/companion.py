"""The twins in the companion study's setting: its predator–prey world and its metabolic pathway, each with the
source paper's objective (J1, J2) as a registered twin, and the predator–prey comparison with their averaged runs.

- ``predator_prey_paper`` (:data:`PREDATOR_PREY_PAPER`): the big NetLogo world, by default a ninth of it (85×85,
  densities kept), culls as per-animal probabilities after a 1000-tick burn-in, scored by J1
  (:class:`~controlkit.twins.objectives.SteadyStateObjective`).
- ``metabolic_paper`` (:data:`METABOLIC_PAPER`): the companion's pathway rules
  (:class:`~controlkit.twins.metabolic_companion.CompanionPathway`) in continuous mode (dilution 0.0005) from
  80 000 S, 20 000 P, 20 000 Q, by default a twentieth of the area, the inflow as the control, scored by J2
  (:class:`~controlkit.twins.objectives.YieldRatioObjective`).

Fonseca et al. ("Optimal control of agent-based models via surrogate modeling", PLOS Comp. Biol. 2025; code and
data: LaboratoryForSystemsMedicine/Metamodeling-and-Control-of-Medical-Digital-Twins_2024, MIT) ran NetLogo's
Wolf Sheep Predation on a 255×255 world with 2500 sheep and 1250 wolves and averaged 100 runs: uncontrolled for
1000 ticks (dataset I, ``Dados01.mat``) and with 2 % of the sheep removed per tick from tick 1000 on (dataset IV,
``DadosConSheep2.mat``). Their ``.mat`` files hold ``Ya``: one row per tick (row 0 = set-up) with columns grass,
sheep, wolves, each the mean of 100 runs.

NetLogo removes the animals at the end of a tick and plots after the removal; the twin removes them at the start
of the next tick and observes before it. Removal and grass regrowth touch disjoint things, so both orders give
the same dynamics, and NetLogo's plotted sheep are the twin's observed sheep times ``1 - cull`` (in expectation).
:func:`steady_state` applies that factor so the two are compared like for like.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from controlkit.twins.metabolic_companion import CompanionPathway
from controlkit.twins.objectives import SteadyStateObjective, YieldRatioObjective
from controlkit.twins.predator_prey import PredatorPrey
from controlkit.twins.registry import TwinSpec

COMPANION_SIDE = 255
COMPANION_SHEEP = 2500
COMPANION_WOLVES = 1250


def companion_params(side: int = COMPANION_SIDE) -> dict:
    """PredatorPrey parameters of the companion's big world, scaled to a ``side``×``side`` torus.

    The initial populations scale with the area so densities match; the rates are NetLogo's defaults (the
    twin's). ``removal="fraction"``: a control is the per-animal removal probability, as in NetLogo's
    ``random-float 1000 < 20``.
    """
    f = side * side / COMPANION_SIDE**2
    return {"width": side, "height": side, "initial_sheep": round(COMPANION_SHEEP * f),
            "initial_wolves": round(COMPANION_WOLVES * f), "removal": "fraction"}


def load_netlogo_averages(path: str | Path) -> np.ndarray:
    """The companion's averaged NetLogo series as ``(ticks + 1, 3)`` in the twin's column order (sheep, wolves,
    grass)."""
    from scipy.io import loadmat

    ya = np.asarray(loadmat(str(path))["Ya"], dtype=float)
    return ya[:, [1, 2, 0]]


@dataclasses.dataclass(frozen=True)
class SteadyState:
    """Time-averaged populations of one twin run over a window, in the companion's units (255×255 world).

    Attributes:
        side: Side of the world simulated.
        seed: Twin seed.
        cull_sheep: Per-tick sheep removal probability from ``start`` on.
        window: ``(first, last)`` tick of the average (inclusive, exclusive).
        mean: Mean of (sheep, wolves, grass) over the window, NetLogo's timing (after the removal), scaled by
            ``255² / side²``.
    """

    side: int
    seed: int
    cull_sheep: float
    window: tuple[int, int]
    mean: np.ndarray


def steady_state(side: int, seed: int, cull_sheep: float = 0.0, start: int = 1000,
                 window: tuple[int, int] = (800, 1000), **overrides) -> SteadyState:
    """Run the twin in the companion setting (``side``×``side``) and average its populations over ``window``.

    Without culling the run lasts ``window[1]`` ticks; with ``cull_sheep > 0`` the sheep are culled from tick
    ``start`` (as in dataset IV) until ``window[1]``. ``overrides`` change other PredatorPrey parameters.
    """
    twin = PredatorPrey({**companion_params(side), **overrides}, seed=seed)
    schedule = np.zeros((window[1], 2))
    schedule[start:, 0] = cull_sheep
    traj = twin.run(schedule)
    netlogo_timing = traj * np.array([1.0 - cull_sheep, 1.0, 1.0])
    scale = COMPANION_SIDE**2 / side**2
    return SteadyState(side, seed, cull_sheep, window, netlogo_timing[window[0]:window[1]].mean(0) * scale)


# Uncontrolled, the big world settles near 4000 sheep and 1920 wolves (dataset I); removing 2 % of the grass per
# tick holds the wolves near 960 (dataset III). J1's default target is that reachable pair, per ninth of the world.
PREDATOR_PREY_PAPER = TwinSpec(
    "predator_prey_paper", PredatorPrey, SteadyStateObjective, params=companion_params(85),
    task={"burn_in": 1000, "interval": 20, "decisions": 50, "apply": "hold", "u_high": (0.05, 0.05)},
    objective_settings={"target": (445.0, 107.0), "fraction": True, "window": 0.5},
    observation={"observables": ("sheep", "wolves"), "noise": 0.1, "interval": 20})
METABOLIC_PAPER = TwinSpec(
    "metabolic_paper", CompanionPathway, YieldRatioObjective, params={"scale": 0.05},
    task={"burn_in": 0, "interval": 100, "decisions": 100, "apply": "hold", "u_high": (3.0,)},
    observation={"observables": ("S", "R", "T"), "noise": 0.05, "interval": 100})

__all__ = ["COMPANION_SIDE", "METABOLIC_PAPER", "PREDATOR_PREY_PAPER", "SteadyState", "companion_params",
           "load_netlogo_averages", "steady_state"]
