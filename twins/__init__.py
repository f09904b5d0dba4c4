"""Controllable agent-based digital twins (Mesa 3 models): predator–prey, an immune twin, a metabolic pathway.

Each twin is built from parameters and a seed, advanced by ``step(control)`` or ``run(controls)``, and reports
named observables; ``controlkit.envs`` wraps them as gymnasium environments.
"""

from controlkit.twins._common import ControlSpec, TwinModel
from controlkit.twins.immune import ImmuneParams, ImmuneTwin, immune_cost
from controlkit.twins.metabolic import MetabolicParams, MetabolicPathway, metabolic_cost
from controlkit.twins.predator_prey import PredatorPrey, PredatorPreyParams, predator_prey_cost

__all__ = [
    "ControlSpec",
    "ImmuneParams",
    "ImmuneTwin",
    "MetabolicParams",
    "MetabolicPathway",
    "PredatorPrey",
    "PredatorPreyParams",
    "TwinModel",
    "immune_cost",
    "metabolic_cost",
    "predator_prey_cost",
]
