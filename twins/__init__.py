"""Controllable agent-based digital twins (Mesa 3 models): predator–prey, an immune twin, a metabolic pathway.

Each twin is built from parameters and a seed, advanced by ``step(control)`` or ``run(controls)``, and reports
named observables. The registry (:func:`register_twin`, :func:`get_twin`) ties each twin to its one objective and
its default control task (:func:`make_task`); ``controlkit.envs`` wraps every registered twin as one gymnasium
env class whose reward is that objective. The control layer's torch-free entry points (``TwinTask``,
``make_objective``, ``evaluate``) are re-exported here; surrogates, neural controllers and baselines live in
``controlkit.twins.surrogate``, ``.neural_control`` and ``.baselines`` (they import torch).
"""

from controlkit.twins._common import ControlSpec, TwinModel, check_int, check_range
from controlkit.twins.adapter import MesaTwin, grid_picture, wrap_mesa_model
from controlkit.twins.deploy import Evaluation, evaluate, run_episode
from controlkit.twins.immune import ImmuneParams, ImmuneTwin
from controlkit.twins.metabolic import MetabolicParams, MetabolicPathway
from controlkit.twins.metabolic_companion import CompanionPathway, CompanionPathwayParams
from controlkit.twins.objectives import (
    ImmuneObjective,
    MetabolicObjective,
    Objective,
    PredatorPreyObjective,
    SteadyStateObjective,
    TwinTask,
    YieldRatioObjective,
    make_objective,
)
from controlkit.twins.observation import ObservationModel
from controlkit.twins.predator_prey import PredatorPrey, PredatorPreyParams
from controlkit.twins.registry import (
    TwinSpec,
    get_twin,
    make_observation,
    make_task,
    make_twin,
    register_twin,
    twin_names,
)

__all__ = [
    "CompanionPathway",
    "CompanionPathwayParams",
    "ControlSpec",
    "Evaluation",
    "ImmuneObjective",
    "ImmuneParams",
    "ImmuneTwin",
    "MetabolicObjective",
    "MesaTwin",
    "MetabolicParams",
    "MetabolicPathway",
    "ObservationModel",
    "Objective",
    "PredatorPrey",
    "PredatorPreyObjective",
    "PredatorPreyParams",
    "TwinModel",
    "TwinSpec",
    "SteadyStateObjective",
    "TwinTask",
    "YieldRatioObjective",
    "check_int",
    "check_range",
    "evaluate",
    "get_twin",
    "grid_picture",
    "make_objective",
    "make_observation",
    "make_task",
    "make_twin",
    "register_twin",
    "run_episode",
    "twin_names",
    "wrap_mesa_model",
]
