"""The predator–prey twin in the companion study's NetLogo setting, and its comparison with their averaged runs.

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
from controlkit.twins.predator_prey import PredatorPrey

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


__all__ = ["COMPANION_SIDE", "SteadyState", "companion_params", "load_netlogo_averages", "steady_state"]
