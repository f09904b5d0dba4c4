"""Controllable agent-based digital twins (Mesa 3 models): predator–prey, an immune twin, a metabolic pathway.

Each twin is built from parameters and a seed, advanced by ``step(control)`` or ``run(controls)``, and reports
named observables; ``controlkit.envs`` wraps them as gymnasium environments. The control layer's torch-free
entry points (``TwinTask``, ``make_objective``, ``evaluate``) are re-exported here; surrogates, neural controllers
and baselines live in ``controlkit.twins.surrogate``, ``.neural_control`` and ``.baselines`` (they import torch).
"""

from controlkit.twins._common import ControlSpec, TwinModel
from controlkit.twins.deploy import Evaluation, evaluate, run_episode
from controlkit.twins.immune import ImmuneParams, ImmuneTwin, immune_cost
from controlkit.twins.metabolic import MetabolicParams, MetabolicPathway, metabolic_cost
from controlkit.twins.objectives import TwinTask, make_objective
from controlkit.twins.predator_prey import PredatorPrey, PredatorPreyParams, predator_prey_cost

TWINS: dict[str, type[TwinModel]] = {
    "immune": ImmuneTwin,
    "metabolic": MetabolicPathway,
    "predator_prey": PredatorPrey,
}
"""The twins by short name (the ``twin:`` field of a ``twin_simulate`` experiment)."""


def make_twin(name: str, params: dict | None = None, seed: int | None = None) -> TwinModel:
    """Build the twin called ``name`` (see :data:`TWINS`) with parameter overrides and a seed."""
    from controlkit.core.errors import choices_error

    if name not in TWINS:
        raise choices_error("twin", name, TWINS)
    return TWINS[name](params, seed=seed)


__all__ = [
    "ControlSpec",
    "Evaluation",
    "ImmuneParams",
    "ImmuneTwin",
    "MetabolicParams",
    "MetabolicPathway",
    "PredatorPrey",
    "PredatorPreyParams",
    "TWINS",
    "TwinModel",
    "TwinTask",
    "evaluate",
    "immune_cost",
    "make_objective",
    "make_twin",
    "metabolic_cost",
    "predator_prey_cost",
    "run_episode",
]
