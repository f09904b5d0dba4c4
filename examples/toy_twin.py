"""A user's own twin in one file: a harvested logistic population, registered with ``register_twin``.

Import this module (or name it in YAML as ``twin: "toy_twin:SPEC"`` with this folder on ``PYTHONPATH``) and the
twin works everywhere a built-in one does: ``gymnasium.make("controlkit/ToyHarvest-v0")``, the ``twin_simulate``
and ``twin_control`` experiments, ``controlkit.twins.make_task("toy_harvest")``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from controlkit.twins import ControlSpec, Objective, TwinModel, TwinSpec, check_int, check_range, register_twin


@dataclasses.dataclass(frozen=True)
class HarvestParams:
    """Parameters: initial fish, growth rate per tick, carrying capacity."""

    initial: int = 200
    growth: float = 0.08
    capacity: float = 1000.0

    def validate(self) -> None:
        check_int("initial", self.initial)
        check_range("growth", self.growth, 0.0, 1.0)
        check_range("capacity", self.capacity, 1.0)


class HarvestTwin(TwinModel):
    """Each fish breeds with probability ``growth * (1 - n / capacity)`` per tick; the control removes fish."""

    Params = HarvestParams
    OBSERVABLES = ("fish",)

    def _controls(self) -> tuple[ControlSpec, ...]:
        return (ControlSpec("harvest", 0.0, 1.0, "probability that each fish is caught this tick"),)

    def _setup(self) -> None:
        self.n = int(self.params.initial)

    def _advance(self, control: np.ndarray) -> None:
        self.n -= int(self.rng.binomial(self.n, control[0]))
        p = max(0.0, self.params.growth * (1 - self.n / self.params.capacity))
        self.n += int(self.rng.binomial(self.n, p))

    def _observe(self) -> np.ndarray:
        return np.array([float(self.n)])

    def grid_image(self) -> np.ndarray:
        img = np.zeros((10, 10, 3), np.uint8)
        img.reshape(-1, 3)[: min(100, self.n // 10)] = (40, 90, 200)
        return img

    def summarize(self, trajectory: np.ndarray) -> dict[str, Any]:
        return {"final_fish": float(trajectory[-1, 0])}


class HarvestObjective(Objective):
    """Hold the stock at ``target`` fish; every fish caught earns ``catch`` (a negative cost)."""

    TWIN = "toy_harvest"
    TERMS = {"tracking": 1.0, "catch": 0.5}

    def __init__(self, weights=None, target: float = 500.0) -> None:
        super().__init__(weights)
        self.target = float(target)

    def terms(self, prev, obs, rate):
        return {"tracking": abs(obs[..., 0] - self.target) / self.target,
                "catch": -rate[..., 0] * prev[..., 0] / self.target}

    def outcomes(self, obs, controls):
        return {"mean_fish": float(obs[:, 0].mean())}

    def bang_bang(self, obs, low, high):
        return np.where(obs[0] > self.target, high, low)


SPEC = register_twin(TwinSpec("toy_harvest", HarvestTwin, HarvestObjective,
                              task={"burn_in": 20, "interval": 5, "decisions": 10, "apply": "hold"},
                              objective_settings={"target": 500.0}, env_id="controlkit/ToyHarvest-v0"))
